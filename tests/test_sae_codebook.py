"""The ``codebook`` SAE (Tamkin et al. 2023): known answers, training, files, command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from untwine.cli import main as cli_main
from untwine.sae import ARCHITECTURES, SAESpec, evaluate_sae, load_sae, save_sae, train_sae, train_saes
from untwine.sae.codebook import CodebookSAE
from untwine.sae.io import WEIGHTS
from untwine.sae.synthetic import make_synthetic

#: a hand-made codebook of 5 vectors in 3 dimensions, of different norms
BOOK = torch.tensor([
    [2.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 50.0],
    [1.0, 1.0, 0.0],
    [-1.0, 0.0, 0.0],
])


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(48, 16, 6000, active=3, seed=1)


def _book(members, center=False, b_dec=(0.0, 0.0, 0.0)) -> CodebookSAE:
    m = CodebookSAE(3, 5, [{**h, "center_input": center} for h in members])
    with torch.no_grad():
        m.W_dec.copy_(BOOK.expand_as(m.W_dec))
        m.b_dec.copy_(torch.tensor(b_dec).expand_as(m.b_dec))
    return m.eval()


def test_registered_with_the_others():
    assert ARCHITECTURES["codebook"] is CodebookSAE
    assert CodebookSAE.saelens_architecture == "codebook" and not CodebookSAE.has_encoder


def test_output_is_the_sum_of_the_k_most_cosine_similar_vectors():
    """x = (3, 1, 0.1): cosines rank c0 (0.95), c3 (0.89), c1 (0.32), c2 (0.03), c4; inner
    products would rank c2 (5.0) second. k = 2 takes c0 + c3 = (3, 1, 0), not scaled by similarity."""
    x = torch.tensor([[3.0, 1.0, 0.1], [0.0, 0.2, 1.0]])
    m = _book([{"k": 2}])
    codes, x_hat = m.reconstruct(x)
    assert torch.equal(codes, torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 1, 0, 0]]))
    assert torch.equal(x_hat, torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 50.0]]))
    assert torch.equal(m.decode(m.encode(x)), x_hat)  # the codes reproduce the forward pass


def test_members_with_their_own_k_and_a_centred_input():
    """Two members (k = 1, 3) in one module; with centring the choice is on x - b_dec and b_dec is added back."""
    m = _book([{"k": 1}, {"k": 3}], center=True, b_dec=(1.0, 0.0, 0.0))
    x = torch.tensor([[4.0, 1.0, 0.1]])  # x - b_dec = (3, 1, 0.1): c0, c3, c1 by cosine
    codes, x_hat = m.reconstruct(x)
    assert torch.equal(codes[0], torch.tensor([[1.0, 0, 0, 0, 0]]))
    assert torch.equal(codes[1], torch.tensor([[1.0, 1, 0, 1, 0]]))
    assert torch.equal(x_hat[0], torch.tensor([[3.0, 0.0, 0.0]]))
    assert torch.equal(x_hat[1], torch.tensor([[4.0, 2.0, 0.0]]))
    assert torch.equal(m.decode(codes), x_hat)


def test_unused_codes_are_replaced_by_the_worst_rows_over_k():
    m = _book([{"k": 2, "replace_rows": 10}])
    x = torch.tensor([[3.0, 1.0, 0.1], [0.2, 0.1, -2.0], [0.0, 2.0, 0.0]])
    with torch.no_grad():
        m.rows_since_fired.copy_(torch.tensor([[0, 0, 0, 0, 20]]))
    enc = m.encode_batch(x, train=True)  # row 1 gets c3 + c0 = (3, 1, 0): reconstructed worst
    errors = (x - m.decode_encoded(enc)[0]).pow(2).sum(-1)
    assert int(errors.argmax()) == 1
    m.update_state(enc, 3)
    # c4 never chosen: 20 + 3 rows unused, replaced by row 1 / k; the others fired or are young
    assert torch.equal(m.W_dec[0, 4], x[1] / 2)
    assert torch.equal(m.W_dec[0, :4], BOOK[:4])
    m2 = _book([{"k": 2, "replace_rows": 0}])  # 0: never
    with torch.no_grad():
        m2.rows_since_fired.fill_(10**6)
    m2.update_state(m2.encode_batch(x, train=True), 3)
    assert torch.equal(m2.W_dec[0], BOOK)


def test_training_reduces_fvu_and_finds_the_dictionary(syn, tmp_path):
    kw = dict(arch="codebook", latents=96, k=3, batch_size=256, seed=0, progress=False)
    first = evaluate_sae(train_sae(syn.acts[:5000], steps=1, out=tmp_path / "a", **kw), syn.acts[5000:], features=syn.dictionary)
    d = train_sae(syn.acts[:5000], steps=150, out=tmp_path / "b", **kw)
    s = evaluate_sae(d, syn.acts[5000:], features=syn.dictionary)
    assert s["l0"] == pytest.approx(3.0)
    assert s["fvu"] < 0.6 * first["fvu"], (first["fvu"], s["fvu"])
    assert s["mmcs"] > first["mmcs"] + 0.2, (first["mmcs"], s["mmcs"])


def test_save_load_round_trip_is_bit_exact(syn, tmp_path):
    d = train_sae(syn.acts[:3000], arch="codebook", latents=48, k=3, steps=20, batch_size=256, progress=False, out=tmp_path / "t")
    back = load_sae(d)
    x = torch.from_numpy(syn.acts[3000:3400])
    c1, r1 = back.reconstruct(x)
    # the 0/1 codes decode to the forward pass (a dense product: up to the order of the sums)
    assert torch.allclose(back.decode(c1), r1, rtol=1e-6, atol=1e-6)
    save_sae(tmp_path / "again", back)
    assert (tmp_path / "again" / WEIGHTS).read_bytes() == (d / WEIGHTS).read_bytes()
    c2, r2 = load_sae(tmp_path / "again").reconstruct(x)
    assert torch.equal(c1, c2) and torch.equal(r1, r2)
    # a module in training units (input scale 4: exact in binary) encodes and decodes as its file does
    m = CodebookSAE(16, 48, [{"k": 3}], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.input_scale.fill_(4.0)
        m.b_dec.normal_()
    m.eval()
    save_sae(tmp_path / "scaled", m)
    cfg = json.loads((tmp_path / "scaled" / "cfg.json").read_text())
    assert cfg["architecture"] == "codebook" and cfg["k"] == 3 and cfg["untwine"]["architecture"] == "codebook"
    c0, r0 = m.reconstruct(x)
    c3, r3 = load_sae(tmp_path / "scaled").reconstruct(x)
    assert torch.equal(c0, c3) and torch.equal(r0, r3)


def test_cli_train_evaluate_and_a_sweep_beside_topk(syn, tmp_path):
    acts = tmp_path / "acts.npy"
    np.save(acts, syn.acts[:3000])
    np.save(tmp_path / "features.npy", syn.dictionary)
    out = tmp_path / "cb"
    assert cli_main(["sae", "train", str(acts), "--arch", "codebook", "--latents", "48", "--k", "3", "--set", "replace_rows=512",
                     "--steps", "20", "--batch-size", "256", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "cfg.json").read_text())["untwine"]["hparams"] == {"k": 3, "replace_rows": 512}
    assert json.loads((out / "training.json").read_text())["lr"] == CodebookSAE.default_lr
    scores = tmp_path / "scores.json"
    assert cli_main(["sae", "evaluate", str(out), str(acts), "--features", str(tmp_path / "features.npy"), "--json", str(scores)]) == 0
    s = json.loads(scores.read_text())
    assert s["l0"] == pytest.approx(3.0) and 0 <= s["fvu"] < 1 and 0 < s["mmcs"] <= 1
    sweep = tmp_path / "sweep"
    assert cli_main(["sae", "sweep", str(acts), "--arch", "topk,codebook", "--latents", "48", "--k", "2,3", "--steps", "10",
                     "--batch-size", "256", "--out", str(sweep), "--no-progress"]) == 0
    specs = [SAESpec(a, 48, {"k": k}) for a in ("topk", "codebook") for k in (2, 3)]
    for spec in specs:
        sae = load_sae(sweep / spec.label())
        assert sae.name == spec.arch and sae.hparams[0]["k"] == spec.hparams["k"]
        codes = sae.encode(torch.from_numpy(syn.acts[:200]))
        assert int((codes != 0).sum(1).max()) <= spec.hparams["k"]
    # stacked into one module (members k = 2, 3), the first trains as it does alone
    dirs = train_saes(syn.acts[:3000], specs[2:], out=tmp_path / "lib", steps=10, batch_size=256, progress=False, stack=True)
    alone = train_sae(syn.acts[:3000], arch="codebook", latents=48, k=2, steps=10, batch_size=256, progress=False, out=tmp_path / "one")
    x = torch.from_numpy(syn.acts[:200])
    (c_sw, r_sw), (c_one, r_one) = load_sae(dirs[0]).reconstruct(x), load_sae(alone).reconstruct(x)
    assert torch.equal(c_sw, c_one) and torch.allclose(r_sw, r_one, atol=1e-5)
