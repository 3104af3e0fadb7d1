"""SAELens interoperability against files SAELens itself wrote (no sae-lens needed).

``tests/fixtures/saelens/`` is written by ``tests/fixtures/make_saelens.py`` (run by hand
with sae-lens installed): one folder per SAELens architecture and setting untwine shares,
SAELens's codes and reconstructions of 64 fixed inputs, and the keys of SAELens's configs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from untwine.errors import UntwineError
from untwine.sae import ARCHITECTURES, load_sae, save_sae
from untwine.sae.io import CFG, WEIGHTS

FIX = Path(__file__).parent / "fixtures" / "saelens"
MANIFEST = json.loads((FIX / "manifest.json").read_text())
NAMES = sorted(MANIFEST["fixtures"])
#: untwine's architectures SAELens also has (top_afa is untwine's own)
SHARED = [a for a, c in ARCHITECTURES.items() if c.saelens_architecture in MANIFEST["saelens_cfg_keys"]]


def _inputs() -> torch.Tensor:
    return torch.from_numpy(np.load(FIX / "inputs.npy"))


def _expected(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    e = np.load(FIX / name / "expected.npz")
    return torch.from_numpy(e["codes"]), torch.from_numpy(e["recons"])


def _copy(name: str, tmp_path: Path) -> Path:
    d = tmp_path / name
    shutil.copytree(FIX / name, d)
    return d


def _edit_cfg(d: Path, **changes) -> None:
    cfg = json.loads((d / CFG).read_text())
    cfg.update(changes)
    (d / CFG).write_text(json.dumps(cfg))


def test_fixtures_cover_every_shared_architecture_and_setting():
    archs = {f["architecture"] for f in MANIFEST["fixtures"].values()}
    assert archs == {"standard", "topk", "batchtopk", "jumprelu", "matching_pursuit"}
    settings = [f["settings"] for f in MANIFEST["fixtures"].values()]
    assert any(s.get("apply_b_dec_to_input") is False for s in settings)
    assert any(s.get("stop_on_duplicate_support") is False for s in settings)
    cfgs = {n: json.loads((FIX / n / CFG).read_text()) for n in NAMES}
    assert any(c["architecture"] == "batchtopk" and c["rescale_acts_by_decoder_norm"] for c in cfgs.values())
    assert any(c["architecture"] == "matching_pursuit" and c["stop_on_duplicate_support"] for c in cfgs.values())
    assert SHARED == [a for a in ARCHITECTURES if a not in ("top_afa", "codebook")]  # untwine's own


@pytest.mark.parametrize("name", NAMES)
def test_untwine_encodes_and_decodes_saelens_files_as_saelens_does(name):
    x = _inputs()
    codes_ref, recons_ref = _expected(name)
    sae = load_sae(FIX / name)
    codes, recons = sae.reconstruct(x)
    differ = int((codes != 0).ne(codes_ref != 0).any(1).sum())
    assert differ == 0, f"{name}: support differs on {differ} rows"
    assert torch.allclose(codes, codes_ref, rtol=1e-6, atol=2e-6), float((codes - codes_ref).abs().max())
    assert torch.allclose(recons, recons_ref, rtol=1e-6, atol=2e-6), float((recons - recons_ref).abs().max())
    # decoding SAELens's own codes gives SAELens's reconstruction
    assert torch.allclose(sae.decode(codes_ref), recons_ref, rtol=1e-6, atol=2e-6)


def test_matching_pursuit_fixture_exercises_duplicate_support_and_b_dec(tmp_path):
    """The settings matter on these fixtures: flipping one changes SAELens's answer."""
    x = _inputs()
    codes_ref, _ = _expected("matching_pursuit")
    d = _copy("matching_pursuit", tmp_path)
    _edit_cfg(d, stop_on_duplicate_support=False)
    codes = load_sae(d).encode(x)
    assert (codes != 0).sum(1).float().mean() > (codes_ref != 0).sum(1).float().mean() + 1
    codes_ref, recons_ref = _expected("matching_pursuit_no_dup_stop_no_b_dec_in")
    sae = load_sae(FIX / "matching_pursuit_no_dup_stop_no_b_dec_in")
    b_dec = sae.b_dec[0].detach()
    assert float(b_dec.norm()) > 1
    assert torch.allclose(recons_ref, codes_ref @ sae.W_dec[0].detach(), atol=2e-6)  # SAELens adds no b_dec here


def test_matching_pursuit_may_run_more_steps_than_latents(tmp_path):
    """max_iterations counts steps (an atom may come back), not latents: 40 > d_sae = 32
    loads, and as every row of this fixture stops on a repeated support within d_in = 16
    steps, the codes are SAELens's."""
    d = _copy("matching_pursuit", tmp_path)
    _edit_cfg(d, max_iterations=40)
    codes_ref, _ = _expected("matching_pursuit")
    assert torch.equal(load_sae(d).encode(_inputs()), codes_ref)


@pytest.mark.parametrize("arch", SHARED)
def test_untwine_saved_folder_has_every_key_saelens_expects(arch, tmp_path):
    cls = ARCHITECTURES[arch]
    m = cls(16, 32, [{"k": 4} if "k" in cls.hparam_defaults else {}]).eval()
    save_sae(tmp_path, m)
    cfg = json.loads((tmp_path / CFG).read_text())
    expected = set(MANIFEST["saelens_cfg_keys"][cls.saelens_architecture])
    assert expected <= set(cfg), sorted(expected - set(cfg))
    # recorded by make_saelens.py: SAELens loads that folder and encodes it as untwine does
    seen = MANIFEST["untwine_saved_loaded_by_saelens"][arch]
    assert seen["saelens_loads"] and seen["same_support"] and seen["max_code_diff"] < 1e-5
    assert expected <= set(seen["cfg_keys"])


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("standard", "some_new_option", 3),  # a key untwine has never heard of
        ("standard", "k", 8),  # a key of another architecture
        ("jumprelu", "normalize_activations", "layer_norm"),
        ("topk", "reshape_activations", "hook_z"),
        ("matching_pursuit", "stop_on_duplicate_support", "yes"),
        ("batchtopk_checkpoint", "k", -1),
    ],
)
def test_a_key_untwine_does_not_implement_is_refused_naming_it(name, key, value, tmp_path):
    d = _copy(name, tmp_path)
    _edit_cfg(d, **{key: value})
    with pytest.raises(UntwineError, match=f"'{key}' = {value!r}"):
        load_sae(d)


def test_unknown_keys_with_default_values_and_training_keys_load(tmp_path):
    d = _copy("jumprelu_checkpoint_no_b_dec_in", tmp_path)
    _edit_cfg(d, some_new_option=None, another_flag=False, l0_coefficient=123.0, model_name="gpt2")
    codes_ref, _ = _expected("jumprelu_checkpoint_no_b_dec_in")
    assert torch.equal(load_sae(d).encode(_inputs()) != 0, codes_ref != 0)


def _flip_last_weight_bit(d: Path) -> None:
    raw = bytearray((d / WEIGHTS).read_bytes())
    raw[-1] ^= 0x40  # an exponent bit of the last float (the data come after the header)
    (d / WEIGHTS).write_bytes(bytes(raw))


def test_weights_checksum_catches_a_flipped_bit(tmp_path):
    m = ARCHITECTURES["topk"](16, 32, [{"k": 4}]).eval()
    with torch.no_grad():
        m.b_enc.normal_()
    save_sae(tmp_path, m)
    cfg = json.loads((tmp_path / CFG).read_text())
    assert len(cfg["untwine"]["weights_sha256"]) == 64
    x = _inputs()
    before = load_sae(tmp_path).encode(x)
    _flip_last_weight_bit(tmp_path)
    with pytest.raises(UntwineError, match="checksum mismatch"):
        load_sae(tmp_path)
    # without the recorded checksum the same file loads and silently gives other codes
    del cfg["untwine"]["weights_sha256"]
    (tmp_path / CFG).write_text(json.dumps(cfg))
    assert not torch.equal(load_sae(tmp_path).encode(x), before)


def test_saelens_files_without_a_checksum_load():
    assert all("untwine" not in json.loads((FIX / n / CFG).read_text()) for n in NAMES)
    load_sae(FIX / "topk")


def test_members_of_one_module_may_differ_in_duplicate_support_stopping():
    mp = ARCHITECTURES["mp"]
    torch.manual_seed(3)
    both = mp(16, 32, [{"k": 12, "stop_on_duplicate_support": True}, {"k": 12, "stop_on_duplicate_support": False}]).eval()
    x = torch.randn(50, 16) * 2
    codes = both.encode(x)
    for m, flag in enumerate((True, False)):
        one = mp(16, 32, [{"k": 12, "stop_on_duplicate_support": flag}]).eval()
        with torch.no_grad():
            one.W_dec.copy_(both.W_dec[m : m + 1])
            one.b_dec.copy_(both.b_dec[m : m + 1])
        assert torch.equal(one.encode(x), codes[m])
    assert (codes[0] != 0).sum() < (codes[1] != 0).sum()


@pytest.mark.parametrize("name", NAMES)
def test_saelens_files_saved_again_by_untwine_encode_the_same(name, tmp_path):
    """Load SAELens's file, save it with untwine (norms folded, untwine's block added), load
    that: the codes' support and the reconstructions stay SAELens's."""
    x = _inputs()
    codes_ref, recons_ref = _expected(name)
    save_sae(tmp_path / name, load_sae(FIX / name))
    codes, recons = load_sae(tmp_path / name).reconstruct(x)
    assert torch.equal(codes != 0, codes_ref != 0)
    assert torch.allclose(recons, recons_ref, rtol=1e-5, atol=1e-5), float((recons - recons_ref).abs().max())
