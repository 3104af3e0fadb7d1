"""The SAE extension contract: one class and one ``register`` call make an architecture.

Plug-in architectures are defined here, outside the package, registered for a test and
removed after it.  Every registered architecture's training gradient is checked against
autograd on its own loss (float64); the plug-ins train, save in SAELens's layout, reload
and evaluate through the command line.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from untwine.cli import main as cli_main
from untwine.errors import UntwineError
from untwine.sae import (
    ARCHITECTURES,
    Encoded,
    SelectingSAE,
    Selection,
    SparseAutoencoder,
    evaluate_sae,
    hparam,
    load_sae,
    register,
    save_sae,
    train_sae,
)
from untwine.sae.registry import unregister
from untwine.sae.synthetic import make_synthetic


# -- plug-ins (as a user writes them, outside untwine) ------------------------------------
class TopKL1SAE(SelectingSAE):
    """TopK whose codes also pay an L1 penalty"""

    name = "topk_l1"

    @dataclass(kw_only=True)
    class Params:
        k: int = hparam(doc="active latents per row", low=1)
        l1: float = hparam(0.05, doc="weight of the L1 penalty on the codes", member=True, low=0)

    def select(self, xn):
        xc = self.centered(xn)
        pre = self.pre_acts(xn, xc)
        return Selection(xc, pre, pre.topk(self.hparams[0]["k"], dim=-1).indices, None)

    def penalty(self, enc, xn, progress):  # no hand_gradients override: must train through autograd
        return self.member_tensor("l1", enc.values.dtype) * enc.values.abs().sum(-1).mean(-1)


class UnitReLUSAE(SparseAutoencoder):
    """ReLU codes, unit-norm decoder rows, plain L1 penalty"""

    name = "relu_unit"
    default_lr = 1e-3

    @dataclass(kw_only=True)
    class Params:
        l1: float = hparam(0.5, doc="weight of the L1 penalty", member=True, low=0)

    def encode_batch(self, xn, *, train):
        pre = self.pre_acts(xn)
        return Encoded(pre.relu(), None, pre)

    def penalty(self, enc, xn, progress):
        return self.member_tensor("l1", enc.values.dtype) * enc.values.sum(-1).mean(-1)


class ClaimsHandPathSAE(TopKL1SAE):
    """says the hand-written gradient is exact, but its penalty is not None"""

    name = "claims_hand"

    def hand_gradients(self):
        return True


PLUGINS = {c.name: c for c in (TopKL1SAE, UnitReLUSAE, ClaimsHandPathSAE)}


@contextlib.contextmanager
def registered(*classes):
    try:
        for c in classes:
            register(c)
        yield
    finally:
        for c in classes:
            unregister(c.name)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(32, 8, 3000, active=2, seed=2)


def _members(cls, two: bool) -> list[dict]:
    """Usable hyper-parameters of ``cls`` for 16 inputs / 48 latents; with ``two``, a second
    member differing in its first member hyper-parameter (when it has one)."""
    hp = {f.name: 3 for f in cls.hparam_fields if f.required}
    if cls.name == "top_afa":
        hp["k"] = 6
    members = [hp]
    varying = [f for f in cls.hparam_fields if f.member and f.kind in (int, float)]
    if two and varying:
        f = varying[0]
        base = hp.get(f.name, f.default if f.default is not None else 3)
        members.append({**hp, f.name: base + 2 if f.kind is int else base * 2 + 0.5})
    return members


# -- every architecture's training gradient is autograd's --------------------------------
@pytest.mark.parametrize("arch", [*ARCHITECTURES, *PLUGINS])
@pytest.mark.parametrize("two", [False, True])
def test_training_gradient_equals_autograd_for_every_architecture(arch, two):
    """The gradient the training loop uses (hand-written or autograd) equals autograd's on
    the architecture's own loss, terms included, AuxK with dead latents, in float64; neither
    the loss nor the gradient changes any state, update_state does."""
    cls = PLUGINS.get(arch) or ARCHITECTURES[arch]
    with registered(cls) if arch in PLUGINS else contextlib.nullcontext():
        torch.manual_seed(3)
        x = torch.randn(12, 16, dtype=torch.float64) * 2 + 0.5
        modules = []
        for _ in range(2):
            m = cls(16, 48, _members(cls, two), generator=torch.Generator().manual_seed(0)).double()
            torch.manual_seed(4)
            with torch.no_grad():
                m.b_dec.normal_()
                if m.has_encoder:
                    m.b_enc.normal_(std=0.3)
                m.rows_since_fired[:, ::3] = 10**6
            modules.append(m)
        train, auto = modules
        before = {k: v.clone() for k, v in train.state_dict().items()}
        terms, codes = train.gradients(x, progress=0.5, dead_rows=1000)
        loss, t_auto = auto.training_loss(x, progress=0.5, dead_rows=1000)
        loss.backward()
        assert set(terms) == set(t_auto)
        for k in t_auto:
            assert torch.allclose(terms[k], t_auto[k], rtol=1e-10, atol=1e-12), k
        autos = dict(auto.named_parameters())
        for name, q in train.named_parameters():
            p = autos[name]
            assert q.grad is not None and p.grad is not None, name
            assert torch.allclose(q.grad, p.grad, rtol=1e-9, atol=1e-12), (name, float((q.grad - p.grad).abs().max()))
        for k, v in train.state_dict().items():  # pure: nothing but .grad changed
            assert torch.equal(v, before[k]), k
        assert torch.equal(auto.rows_since_fired, before["rows_since_fired"])
        fired = codes.fired(48)
        train.update_state(codes, 12)
        expect = torch.where(fired, 0, before["rows_since_fired"] + 12)
        assert torch.equal(train.rows_since_fired, expect)


def test_the_cross_check_covers_every_registered_architecture():
    assert set(ARCHITECTURES) == {"relu", "topk", "batchtopk", "jumprelu", "mp", "top_afa", "codebook"}
    assert ARCHITECTURES["topk"](16, 48, [{"k": 3}]).uses_hand_gradients()
    assert not ARCHITECTURES["top_afa"](16, 48, [{"afa_coefficient": 0.5}]).uses_hand_gradients()


# -- the bug: a penalty without a hand_gradients override trained without its penalty ---------
def test_a_selecting_subclass_with_a_penalty_trains_with_it():
    """One Adam step of TopKL1SAE from the training path moves the parameters as autograd's
    gradient of reconstruction + penalty does, not as the penalty-free gradient would."""
    x = torch.randn(64, 16, dtype=torch.float64) * 2
    mk = lambda l1: TopKL1SAE(16, 48, [{"k": 4, "l1": l1}], generator=torch.Generator().manual_seed(0)).double()  # noqa: E731
    assert not TopKL1SAE.hand_path_exact and not mk(1.0).uses_hand_gradients()
    steps = {}
    for how, l1 in (("train", 1.0), ("autograd", 1.0), ("no_penalty", 0.0)):
        m = mk(l1)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        if how == "train":
            terms, _ = m.gradients(x, progress=0.5, dead_rows=10**9)
            assert "penalty" in terms and float(terms["penalty"][0]) > 0
        else:
            loss, _ = m.training_loss(x, progress=0.5, dead_rows=10**9)
            opt.zero_grad()
            loss.backward()
        opt.step()
        steps[how] = m.W_enc.detach().clone()
    assert torch.allclose(steps["train"], steps["autograd"], rtol=0, atol=1e-12)
    assert not torch.allclose(steps["train"], steps["no_penalty"], atol=1e-6)


def test_a_class_claiming_the_hand_path_with_a_penalty_still_gets_its_gradient():
    """The safety net: ClaimsHandPathSAE overrides hand_gradients to say True, but its
    penalty is not None on the hand-written path, so the step goes through autograd."""
    assert ClaimsHandPathSAE.hand_path_exact and ClaimsHandPathSAE(16, 48, [{"k": 3}]).uses_hand_gradients()
    x = torch.randn(20, 16, dtype=torch.float64)
    a, b = (ClaimsHandPathSAE(16, 48, [{"k": 3, "l1": 2.0}], generator=torch.Generator().manual_seed(1)).double() for _ in "ab")
    a.gradients(x, progress=0.0, dead_rows=10**9)
    b.training_loss(x, progress=0.0, dead_rows=10**9)[0].backward()
    assert torch.allclose(a.W_enc.grad, b.W_enc.grad, rtol=1e-10, atol=1e-12)


# -- registration and typed hyper-parameters -----------------------------------------------------
def test_registration_refusals_are_one_line():
    class Untyped(SparseAutoencoder):
        name = "untyped"
        hparam_defaults = {"l1": 1.0}

        def encode_batch(self, xn, *, train):
            return Encoded(self.pre_acts(xn).relu())

    class Reader(TopKL1SAE):
        name = "reader"
        saelens_reads = ("topk",)

    with pytest.raises(UntwineError, match="Params"):
        register(Untyped)
    with pytest.raises(UntwineError, match="taken by"):
        register(type("Again", (TopKL1SAE,), {"name": "topk"}))
    with pytest.raises(UntwineError, match="lower-case"):
        register(type("Bad", (TopKL1SAE,), {"name": "Bad Name"}))
    with pytest.raises(UntwineError, match="'topk' is already read as 'topk'"):
        register(Reader)
    with pytest.raises(UntwineError, match="a hyper-parameter's type"):
        type("Weird", (SparseAutoencoder,), {"Params": dataclass(type("P", (), {"__annotations__": {"x": "list"}, "x": 1}))})
    assert "untyped" not in ARCHITECTURES and "reader" not in ARCHITECTURES
    with registered(TopKL1SAE):
        register(TopKL1SAE)  # the same class again: nothing changes
        assert ARCHITECTURES["topk_l1"] is TopKL1SAE and TopKL1SAE.saelens_architecture == "topk_l1"


def test_typed_hyper_parameters_in_errors_and_help(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32))
    base = ["sae", "train", str(tmp_path / "a.npy"), "--latents", "16", "--steps", "2", "--batch-size", "64", "--no-progress"]
    cases = [
        (["--arch", "topk", "--set", "k=abc"], "hyper-parameter k must be int, got 'abc'"),
        (["--arch", "topk", "--set", "k=2.5"], "hyper-parameter k must be int"),
        (["--arch", "relu", "--set", "l1_coefficient=-1"], "hyper-parameter l1_coefficient must be >= 0"),
        (["--arch", "mp", "--k", "2", "--set", "stop_on_duplicate_support=3"], "stop_on_duplicate_support must be bool"),
        (["--arch", "topk", "--k", "2", "--set", "kk=1"], "no hyper-parameter 'kk' (it takes: k (int))"),
    ]
    for extra, message in cases:
        assert cli_main([*base, *extra, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert cli_main(["sae", "sweep", *base[2:], "--arch", "topk,relu", "--latents", "16", "--set", "kk=1",
                     "--out", str(tmp_path / "s")]) == 2
    assert "'kk'" in capsys.readouterr().err
    with registered(TopKL1SAE), pytest.raises(SystemExit):
        cli_main(["sae", "train", "--help"])
    out = capsys.readouterr().out
    for line in ("relu: ", "k*: int required", "l1_coefficient*: float = 3.0", "topk_l1: TopK whose codes also pay an L1 penalty",
                 "l1*: float = 0.05  weight of the L1 penalty on the codes", "default lr 0.01"):
        assert line in out, line


# -- a plug-in trains, saves in SAELens's layout, reloads and evaluates ----------------------------
def test_plugin_trains_saves_reloads_and_evaluates_through_the_cli(syn, tmp_path, capsys):
    np.save(tmp_path / "acts.npy", syn.acts)
    np.save(tmp_path / "features.npy", syn.dictionary)
    acts = str(tmp_path / "acts.npy")
    with registered(TopKL1SAE, UnitReLUSAE):
        sae = tmp_path / "sae"
        assert cli_main(["sae", "train", acts, "--arch", "topk_l1", "--latents", "32", "--k", "2", "--set", "l1=0.01",
                         "--steps", "30", "--batch-size", "128", "--out", str(sae), "--no-progress"]) == 0
        assert {"cfg.json", "sae_weights.safetensors"} <= {p.name for p in sae.iterdir()}
        cfg = json.loads((sae / "cfg.json").read_text())
        assert cfg["architecture"] == "topk_l1" and cfg["untwine"]["architecture"] == "topk_l1"
        assert cfg["untwine"]["hparams"] == {"k": 2, "l1": 0.01}
        log = json.loads((sae / "training.json").read_text())["log"]
        assert "penalty" in log[-1] and log[-1]["mse"] < log[0]["mse"]
        back = load_sae(sae)
        assert type(back) is TopKL1SAE and back.hparams[0]["k"] == 2
        assert cli_main(["sae", "encode", str(sae), acts, "--out", str(tmp_path / "codes.npy")]) == 0
        codes = np.load(tmp_path / "codes.npy")
        assert codes.shape == (3000, 32) and ((codes != 0).sum(1) <= 2).all()
        assert np.allclose(codes, back.encode(torch.from_numpy(syn.acts)).numpy())
        out = tmp_path / "scores.json"
        assert cli_main(["sae", "evaluate", str(sae), acts, "--features", str(tmp_path / "features.npy"), "--json", str(out)]) == 0
        scores = json.loads(out.read_text())
        again = evaluate_sae(sae, syn.acts, features=syn.dictionary)
        for key in ("fvu", "l0", "mmcs", "dead_fraction"):
            assert scores[key] == pytest.approx(again[key]), key
        assert 0 < scores["l0"] <= 2 and scores["fvu"] < 1
        # a sweep mixes plug-ins and built-in architectures
        assert cli_main(["sae", "sweep", acts, "--arch", "topk_l1,relu_unit,topk", "--latents", "32", "--k", "2",
                         "--steps", "10", "--batch-size", "128", "--out", str(tmp_path / "sw"), "--no-progress"]) == 0
        capsys.readouterr()
        for d in sorted((tmp_path / "sw").iterdir()):
            if d.is_dir():
                assert type(load_sae(d)).__name__ in ("TopKL1SAE", "UnitReLUSAE", "TopKSAE")
    with pytest.raises(UntwineError, match="'topk_l1' is not registered"):
        load_sae(sae)


def test_plugin_through_the_library(syn, tmp_path):
    """train_sae with the plug-in's default learning rate; the saved folder encodes as the
    trained module does (input scale and decoder norms folded in)."""
    with registered(UnitReLUSAE):
        d = train_sae(syn.acts, arch="relu_unit", latents=32, steps=20, batch_size=128, out=tmp_path / "s",
                      progress=False, hparams={"l1": 0.1})
        assert json.loads((d / "training.json").read_text())["lr"] == 1e-3
        sae = load_sae(d)
        assert isinstance(sae, UnitReLUSAE) and sae.hparams[0]["l1"] == 0.1
        m = UnitReLUSAE(8, 32, [{"l1": 0.1}], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            m.input_scale.fill_(3.0)
            m.W_dec.mul_(torch.rand(1, 32, 1) + 0.5)
        save_sae(tmp_path / "m", m)
        x = torch.from_numpy(syn.acts[:100])
        assert torch.allclose(load_sae(tmp_path / "m").reconstruct(x)[1], m.reconstruct(x)[1], atol=1e-5)
        assert evaluate_sae(d, syn.acts[:500])["d_sae"] == 32


def _readme_plugin() -> str:
    """The plug-in of the README's "Your own architecture" example, up to its register call."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = text[text.index("#### Your own architecture"):].split("```python\n", 1)[1].split("```", 1)[0]
    return code[: code.index("register(TopKL1SAE)")] + "register(TopKL1SAE)\n"


def test_readme_plugin_from_the_shell_with_plugin(syn, tmp_path, capsys):
    """``--plugin FILE`` imports the README's plug-in file: train, --help, encode and evaluate
    use it; a missing or broken plug-in file is one error line."""
    (tmp_path / "my_sae.py").write_text(_readme_plugin())
    np.save(tmp_path / "acts.npy", syn.acts)
    acts, plug = str(tmp_path / "acts.npy"), str(tmp_path / "my_sae.py")
    try:
        with pytest.raises(SystemExit):
            cli_main(["sae", "train", "--plugin", plug, "--help"])
        assert "topk_l1: TopK whose codes also pay an L1 penalty" in capsys.readouterr().out
        sae = tmp_path / "sae"
        assert cli_main(["sae", "train", acts, "--plugin", plug, "--arch", "topk_l1", "--latents", "32", "--k", "2",
                         "--steps", "20", "--batch-size", "128", "--out", str(sae), "--no-progress"]) == 0
        assert json.loads((sae / "cfg.json").read_text())["architecture"] == "topk_l1"
        assert cli_main(["sae", "encode", str(sae), acts, "--plugin", plug, "--out", str(tmp_path / "c.npy")]) == 0
        assert ((np.load(tmp_path / "c.npy") != 0).sum(1) <= 2).all()
        assert cli_main(["sae", "evaluate", str(sae), acts, "--plugin", plug, "--json", str(tmp_path / "s.json")]) == 0
        assert json.loads((tmp_path / "s.json").read_text())["l0"] <= 2
    finally:
        unregister("topk_l1")
    capsys.readouterr()
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    for bad, message in ((str(tmp_path / "nope.py"), "no such file"), (str(tmp_path / "broken.py"), "ModuleNotFoundError")):
        assert cli_main(["sae", "encode", str(sae), acts, "--plugin", bad, "--out", str(tmp_path / "c.npy")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --plugin") and message in err[0], err
