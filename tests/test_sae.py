"""Sparse autoencoders: architectures, training loop, SAELens layout, metrics, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from untwine.cli import main as cli_main
from untwine.concepts.reconstruction import fvu
from untwine.errors import UntwineError
from untwine.sae import (
    ARCHITECTURES,
    SAESpec,
    evaluate_sae,
    load_sae,
    save_sae,
    train_sae,
    train_saes,
)
from untwine.sae.data import iter_batches, open_activations
from untwine.sae.io import CFG, WEIGHTS
from untwine.sae.metrics import coherence, dictionary_match
from untwine.sae.synthetic import make_synthetic
from untwine.sae.top_afa import afa_counts

K = {"topk": 3, "batchtopk": 3, "mp": 3, "top_afa": 6, "codebook": 3, "relu": None, "jumprelu": None}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(48, 16, 6000, active=3, hierarchy=2, children=2, seed=1)


def _module(arch, d_in=16, d_sae=48, members=None, seed=0):
    cls = ARCHITECTURES[arch]
    if members is None:
        members = [{"k": K[arch]} if K[arch] else {}]
    return cls(d_in, d_sae, members, generator=torch.Generator().manual_seed(seed))


# -- architectures -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_encoder_bias_steps_sqrt_d_in_times_the_weights_for_relu_and_jumprelu(arch, syn):
    """Adam's first step moves each parameter by the learning rate: ReLU's and JumpReLU's
    ``b_enc`` by ``sqrt(d_in)`` (4 here) times it, so their thresholds keep up with the
    weights; every other parameter (and other architectures' ``b_enc``) by the rate itself."""
    from untwine.sae.train import _adam

    m = _module(arch)
    if not m.has_encoder:
        return
    x = torch.from_numpy(syn.acts[:256]) * (4.0 / float(np.linalg.norm(syn.acts[:256], axis=1).mean()))
    m.gradients(x, progress=1.0, dead_rows=10**9)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    _adam(m, 1e-3).step()
    step = {n: float((p.detach() - before[n]).abs().max()) for n, p in m.named_parameters()}
    want = 4e-3 if arch in ("relu", "jumprelu") else 1e-3
    assert step["b_enc"] == pytest.approx(want, rel=1e-3), step
    assert step["W_enc"] == pytest.approx(1e-3, rel=1e-3), step
    if arch == "jumprelu":  # free decoder rows from SAELens's norm 0.1, as ReLU's
        assert not m.unit_norm_decoder
        assert torch.allclose(before["W_dec"].norm(dim=-1), torch.full((1, 48), 0.1))


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_each_architecture_reduces_its_loss(arch, syn):
    torch.manual_seed(0)
    hp = {"k": K[arch]} if K[arch] else {}
    if arch == "relu":
        hp.update(l1_coefficient=1.0)
    if arch == "jumprelu":  # its thresholds start low (most latents fire) and rise slowly: a short run cuts the error
        hp.update(l0_coefficient=0.05)
    m = _module(arch, members=[hp])
    scale = 4.0 / float(np.linalg.norm(syn.acts, axis=1).mean())
    with torch.no_grad():
        m.input_scale.fill_(scale)
    x = torch.from_numpy(syn.acts) * scale
    held = x[:512]
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def loss_on(batch):
        with torch.no_grad():
            snap = m.rows_since_fired.clone()
            loss, _ = m.training_loss(batch, progress=1.0, dead_rows=10**9)
            m.rows_since_fired.copy_(snap)
        return float(loss)

    before = loss_on(held)
    for i in range(80):
        batch = x[512 + (i % 20) * 256 : 512 + (i % 20 + 1) * 256]
        loss, _ = m.training_loss(batch, progress=1.0, dead_rows=10**9)
        opt.zero_grad()
        loss.backward()
        m.remove_parallel_grad()
        opt.step()
        m.renorm_decoder()
    after = loss_on(held)
    assert after < 0.7 * before, (arch, before, after)
    if m.unit_norm_decoder:
        assert torch.allclose(m.W_dec.norm(dim=-1), torch.ones(1, 48), atol=1e-5)


@pytest.mark.parametrize(
    "arch,members,dead_every",
    [("topk", [{"k": 3}, {"k": 5}], 3), ("topk", [{"k": 4}], 10), ("top_afa", [{"k": 6}, {"k": 9}], 3)],
)
def test_hand_written_gradients_equal_autograd(arch, members, dead_every):
    """SelectingSAE.compute_gradients (no autograd) gives autograd's gradients and loss terms,
    AuxK included (dead latents forced), in double precision."""
    torch.manual_seed(3)
    x = torch.randn(12, 16, dtype=torch.float64) * 2 + 0.5  # few rows: some dead latents stay unfired
    modules = []
    for _ in range(2):
        m = _module(arch, members=members).double()
        torch.manual_seed(4)
        with torch.no_grad():
            m.b_dec.normal_()
            m.b_enc.normal_(std=0.3)
            m.rows_since_fired[:, ::dead_every] = 10**6  # more or fewer dead latents than k_aux (8)
        modules.append(m)
    hand, auto = modules
    assert hand.hand_gradients()
    t_hand = hand.compute_gradients(x, progress=0.5, dead_rows=1000)
    loss, t_auto = auto.training_loss(x, progress=0.5, dead_rows=1000)
    loss.backward()
    assert set(t_hand) == set(t_auto) and "auxk" in t_hand
    for k in t_auto:
        assert torch.allclose(t_hand[k], t_auto[k], rtol=1e-10, atol=1e-12), k
    for name, p in auto.named_parameters():
        q = dict(hand.named_parameters())[name]
        assert q.grad is not None and q.grad.shape == p.shape, name
        assert q.grad.stride() == q.stride(), name  # fused Adam assumes the parameter's layout
        assert torch.allclose(q.grad, p.grad, rtol=1e-9, atol=1e-12), (name, (q.grad - p.grad).abs().max())
    assert torch.equal(hand.rows_since_fired, auto.rows_since_fired)


def test_training_loop_logs_falling_reconstruction_error(syn, tmp_path):
    d = train_sae(syn.acts, arch="topk", latents=48, k=3, steps=40, batch_size=256, out=tmp_path / "t", progress=False)
    log = json.loads((d / "training.json").read_text())["log"]
    assert log[0]["step"] == 1 and log[-1]["step"] == 40
    assert log[-1]["mse"] < 0.8 * log[0]["mse"]
    sae = load_sae(d)
    x = torch.from_numpy(syn.acts[:2000])
    _, x_hat = sae.reconstruct(x)
    assert fvu(x.numpy(), x_hat.numpy()) < 0.8
    assert torch.allclose(sae.W_dec[0].norm(dim=-1), torch.ones(48), atol=1e-5)  # exported rows: unit norm


def test_matching_pursuit_residual_norm_never_rises():
    m = _module("mp", members=[{"k": 12}])
    x = torch.randn(200, 16) * 3
    enc, norms = m.pursue(x, return_residuals=True)
    assert norms.shape == (13, 1, 200)
    diffs = norms[1:] - norms[:-1]
    assert (diffs <= 1e-5).all()
    assert (norms[-1] < norms[0]).all()
    # x_hat = x - r: the codes decode to the input minus the final residual
    x_hat = m.decode_encoded(enc)[0]
    assert torch.allclose((x - x_hat).norm(dim=-1), norms[-1, 0], atol=1e-4)


def test_matching_pursuit_stops_at_residual_threshold():
    m = _module("mp", members=[{"k": 16, "residual_threshold": 2.0, "stop_on_duplicate_support": False}])
    x = torch.randn(100, 16) * 3
    enc, norms = m.pursue(x, return_residuals=True)
    steps_used = (enc.values != 0).sum(-1)[0]
    # SAELens's order: an atom is taken, then the residual compared with the threshold, so the
    # first step always runs and step t runs while the residual before it is still >= 2
    live = norms[:-1, 0] >= 2.0  # [steps, B]: residual before step t
    live[0] = True
    assert (enc.values[0].T[~live] == 0).all()
    assert torch.equal(enc.values[0].T != 0, live)  # every live step adds an atom (positive projection)
    assert torch.equal(steps_used, live.sum(0)) and steps_used.min() < 16  # some rows stopped early
    small = x[:4] / x[:4].norm(dim=-1, keepdim=True)  # ||x|| = 1, below the threshold from the start
    assert ((m.pursue(small).values != 0).sum(-1) == 1).all()  # one atom, then the check stops it


def test_topk_gives_exactly_k_nonzeros_per_row():
    m = _module("topk", members=[{"k": 5}])
    with torch.no_grad():
        m.b_enc.fill_(10.0)  # every pre-activation positive
    codes = m.encode(torch.randn(300, 16))
    assert ((codes != 0).sum(-1) == 5).all()


def test_topk_members_with_different_k():
    m = _module("topk", members=[{"k": 2}, {"k": 7}])
    with torch.no_grad():
        m.b_enc.fill_(10.0)
    codes = m.encode(torch.randn(50, 16))
    assert codes.shape == (2, 50, 48)
    assert ((codes[0] != 0).sum(-1) == 2).all() and ((codes[1] != 0).sum(-1) == 7).all()


def test_batchtopk_learnt_threshold_encodes_rows_independently(syn, tmp_path):
    d = train_sae(syn.acts, arch="batchtopk", latents=48, k=3, steps=40, batch_size=256, out=tmp_path / "b", progress=False)
    sae = load_sae(d)
    thr = sae.threshold.item()
    assert thr > 0
    x = torch.from_numpy(syn.acts[:64])
    together = sae.encode(x)
    alone = torch.cat([sae.encode(x[i : i + 1]) for i in range(64)])
    # same latents, same values (up to the matmul's blocking): no dependence on the batch
    assert torch.equal(together != 0, alone != 0)
    assert torch.allclose(together, alone, atol=1e-5)
    shuffled = sae.encode(x.flip(0)).flip(0)
    assert torch.equal(shuffled != 0, together != 0)
    assert 1.0 < (together != 0).sum(-1).float().mean() < 8.0
    # the training rule is the batch's top k * B
    m = _module("batchtopk", members=[{"k": 3}])
    enc = m.encode_batch(torch.randn(32, 16), train=True)
    assert int((enc.values != 0).sum()) == 3 * 32


def test_jumprelu_threshold_gradient_is_the_rectangle_kernel_estimate():
    m = _module("jumprelu", members=[{"l0_coefficient": 1.0, "bandwidth": 0.4, "init_threshold": 0.5}])
    x = torch.randn(64, 16)
    enc = m.encode_batch(x, train=True)
    pen = m.penalty(enc, x, 1.0)
    (g,) = torch.autograd.grad(pen.sum(), m.log_threshold)
    pre = enc.pre.detach()[0]
    theta = 0.5
    inside = ((pre - theta).abs() < 0.2).float().sum(0)
    expect = -(1 / 0.4) * inside / 64 * theta  # d/dlog(theta) = theta * d/dtheta
    assert torch.allclose(g[0, 0], expect, atol=1e-5)
    assert (g <= 0).all()


def test_top_afa_keeps_the_count_whose_norm_matches():
    vals = torch.tensor([[3.0, 2.0, 1.0, 0.5]])
    # cumulative norms: 3, 3.61, 3.74, 3.77
    assert afa_counts(vals, torch.tensor([3.0])).item() == 1
    assert afa_counts(vals, torch.tensor([3.6])).item() == 2
    assert afa_counts(vals, torch.tensor([10.0])).item() == 4
    m = _module("top_afa", members=[{"k": 48}])
    x = torch.randn(100, 16) * 4
    enc = m.encode_batch(x, train=False)
    f = enc.values[0].norm(dim=-1)
    z = m.centered(x)[0].norm(dim=-1)
    n = (enc.values[0] != 0).sum(-1)
    assert (n >= 1).all()
    # no other count gives a closer norm
    sorted_vals = enc.pre[0].relu().sort(-1, descending=True).values
    best = ((sorted_vals.pow(2).cumsum(-1).sqrt() - z[:, None]).abs()).min(-1).values
    assert torch.allclose((f - z).abs(), best, atol=1e-4)


# -- metrics -------------------------------------------------------------------------------
def test_fvu_is_error_over_variance_around_the_mean():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 8)) + 5.0  # far from the origin: a wrong denominator shows
    e = rng.standard_normal((500, 8)) * 0.3
    expect = (e**2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert fvu(x, x + e) == pytest.approx(expect)
    assert fvu(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0)
    assert fvu(x, x) == 0.0
    assert fvu(x, x + e) > 5 * (e**2).sum() / (x**2).sum()


def test_mmcs_is_one_for_the_true_dictionary():
    rng = np.random.default_rng(0)
    D = rng.standard_normal((30, 10))
    perm = rng.permutation(30)
    res = dictionary_match(D, 2.5 * D[perm])
    assert res["mmcs"] == pytest.approx(1.0)
    assert res["recovered"] == 1.0
    res = dictionary_match(D, rng.standard_normal((30, 10)))
    assert res["mmcs"] < 0.9
    assert coherence(np.eye(4))["coherence_max"] == 0.0


def test_evaluate_recovers_ground_truth_for_an_oracle_sae(syn):
    """An SAE whose decoder is the true dictionary and whose encoder is the oracle (each row's
    true codes): MCC is 1, nothing is absorbed, the reconstruction is exact; the same SAE with
    each parent's latent silenced wherever one of its children fires absorbs every parent."""
    m = _module("topk", d_in=16, d_sae=48, members=[{"k": 48}])
    D = torch.from_numpy(syn.dictionary)
    with torch.no_grad():
        m.W_dec[0] = D
        m.b_dec.zero_()
    acts, true = syn.acts[:1000], syn.codes[:1000].toarray()
    row_of: dict[bytes, int] = {}
    for i, r in enumerate(acts):
        row_of.setdefault(r.tobytes(), i)  # repeated rows (all zero) have the same codes

    def oracle(x, absorbed=False):
        c = true[[row_of[r.tobytes()] for r in x.cpu().numpy()]].copy()
        if absorbed:
            for p, kids in syn.hierarchy:
                c[c[:, kids].any(1), p] = 0.0
        codes = torch.from_numpy(c)
        return codes, m.decode(codes)

    m.reconstruct = oracle
    scores = evaluate_sae(m, acts, features=syn.dictionary, true_codes=syn.codes[:1000], hierarchy=syn.hierarchy)
    assert scores["mcc"] == pytest.approx(1.0, abs=1e-6)
    assert scores["absorption"] == 0.0
    assert scores["fvu"] < 1e-10
    assert scores["l0"] == pytest.approx(syn.codes[:1000].getnnz(1).mean())
    assert scores["mmcs"] == pytest.approx(1.0)
    assert scores["recovered"] == 1.0
    x = syn.acts[:1000].astype(np.float64)
    codes, x_hat = m.reconstruct(torch.from_numpy(syn.acts[:1000]))
    assert scores["fvu"] == pytest.approx(fvu(x, x_hat.numpy()), rel=1e-5)
    assert scores["l0"] == pytest.approx(float((codes != 0).sum(-1).float().mean()))
    for key in ("mse", "cosine", "dead_fraction", "dense_fraction", "shrinkage", "zf_deviation", "coherence_max", "mcc", "absorption"):
        assert np.isfinite(scores[key]), key
    m.reconstruct = lambda x: oracle(x, absorbed=True)
    absorbing = evaluate_sae(m, acts, features=syn.dictionary, true_codes=syn.codes[:1000], hierarchy=syn.hierarchy)
    assert absorbing["absorption"] == 1.0 and absorbing["mcc"] < 0.99
    assert absorbing["mmcs"] == pytest.approx(1.0)  # the same dictionary


def test_evaluate_with_factors_runs_the_suite(syn, tmp_path):
    d = train_sae(syn.acts, arch="topk", latents=48, k=3, steps=20, batch_size=256, out=tmp_path / "t", progress=False)
    scores = evaluate_sae(d, syn.acts[:1500], factors=syn.factors(3)[:1500], metrics="mig,dci")
    # the suite on the SAE's codes of those rows, exactly
    from untwine.metrics.suite import evaluate_arrays

    codes = load_sae(d).encode(torch.from_numpy(syn.acts[:1500])).float().numpy()
    expected = evaluate_arrays(codes, syn.factors(3)[:1500], metrics="mig,dci", seed=0)
    for key in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test"):
        assert 0.0 <= scores[key] <= 1.0
        assert scores[key] == pytest.approx(expected[key], abs=1e-9), key


# -- files -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_save_load_round_trip_in_saelens_layout(arch, tmp_path):
    m = _module(arch)
    with torch.no_grad():
        m.input_scale.fill_(2.5)  # training normalisation, folded on export
        m.b_dec.normal_()
        if m.has_encoder:
            m.b_enc.normal_(0, 0.1)
        if arch == "relu":
            m.W_dec.mul_(torch.rand(1, 48, 1) + 0.2)  # unconstrained rows
        if arch == "batchtopk":
            m.threshold.fill_(0.2)
    m.eval()
    save_sae(tmp_path / arch, m)
    cfg = json.loads((tmp_path / arch / CFG).read_text())
    for key in ("architecture", "d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations", "metadata"):
        assert key in cfg
    assert cfg["d_in"] == 16 and cfg["d_sae"] == 48 and cfg["normalize_activations"] == "none"
    from safetensors.torch import load_file

    t = load_file(str(tmp_path / arch / WEIGHTS))
    assert t["W_dec"].shape == (48, 16) and t["b_dec"].shape == (16,)
    if m.has_encoder:
        assert t["W_enc"].shape == (16, 48) and t["b_enc"].shape == (48,)
    if arch in ("jumprelu", "batchtopk"):
        assert t["threshold"].shape == (48,)
    if arch == "codebook":  # 0/1 codes: the codebook carries the scale, the normalisation divided out
        assert torch.equal(t["W_dec"], m.W_dec[0] / 2.5)
    else:
        assert torch.allclose(t["W_dec"].norm(dim=-1), torch.ones(48), atol=1e-5)
    back = load_sae(tmp_path / arch)
    x = torch.randn(40, 16) * 2
    _, xh0 = m.reconstruct(x)
    c1, xh1 = back.reconstruct(x)
    assert torch.allclose(xh0, xh1, atol=1e-4)
    assert torch.equal((m.encode(x) != 0), (c1 != 0))


def test_saelens_loads_untwine_saes(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    for arch in ("relu", "topk", "jumprelu", "batchtopk", "mp"):
        m = _module(arch)
        with torch.no_grad():
            m.b_dec.normal_()
            if arch == "batchtopk":
                m.threshold.fill_(0.1)
        m.eval()
        save_sae(tmp_path / arch, m)
        theirs = sae_lens.SAE.load_from_disk(str(tmp_path / arch))
        x = torch.randn(20, 16)
        ours = load_sae(tmp_path / arch)
        assert torch.allclose(theirs.encode(x), ours.encode(x), atol=1e-5), arch
        assert torch.allclose(theirs.decode(theirs.encode(x)), ours.reconstruct(x)[1], atol=1e-5), arch


def test_shards_safetensors_and_npy_stream_the_same_rows(tmp_path):
    from safetensors.numpy import save_file

    x = np.arange(3000 * 4, dtype=np.float32).reshape(3000, 4)
    np.save(tmp_path / "all.npy", x)
    (tmp_path / "shards").mkdir()
    np.save(tmp_path / "shards" / "a.npy", x[:1000])
    save_file({"acts": x[1000:]}, str(tmp_path / "shards" / "b.safetensors"))
    epochs = []
    for src in (tmp_path / "all.npy", tmp_path / "shards", x):
        s = open_activations(src)
        assert (s.rows, s.dim) == (3000, 4)
        rows = np.array([0, 5, 999, 1000, 1001, 2999])
        assert np.array_equal(s.take(rows), x[rows])
        assert np.array_equal(s.take(rows[::-1]), x[rows[::-1]])
        it = iter_batches(s, 100, seed=3, chunk_rows=512, buffer_bytes=4 * 4 * 1024)
        epochs.append(np.concatenate([next(it) for _ in range(30)]))
        epoch = epochs[-1]
        assert sorted(epoch[:, 0].tolist()) == sorted(x[:, 0].tolist())  # every row once per epoch
        assert not np.array_equal(epoch, x)  # shuffled
        skipped = iter_batches(s, 100, seed=3, skip_batches=17, chunk_rows=512, buffer_bytes=4 * 4 * 1024)
        assert np.array_equal(next(skipped), epoch[1700:1800])
    # the memory-mapped file (batches gathered from the map) and the array in memory (from a
    # buffer) are chunked alike: the same batches
    assert open_activations(tmp_path / "all.npy").mapped and not open_activations(x).mapped
    assert np.array_equal(epochs[0], epochs[2])


@pytest.mark.parametrize("stack", [True, False])
def test_resume_reaches_the_weights_of_an_uninterrupted_run(syn, tmp_path, stack):
    from safetensors.torch import load_file

    specs = [SAESpec("topk", 48, {"k": 3}), SAESpec("topk", 48, {"k": 5}), SAESpec("jumprelu", 48, {})]
    kw = {"steps": 30, "batch_size": 256, "seed": 4, "progress": False, "checkpoint_every": 7, "stack": stack}
    full = train_saes(syn.acts, specs, out=tmp_path / "full", **kw)
    assert train_saes(syn.acts, specs, out=tmp_path / "cut", stop_after=12, **kw) == []
    with pytest.raises(UntwineError, match="--resume"):
        train_saes(syn.acts, specs, out=tmp_path / "cut", **kw)
    again = train_saes(syn.acts, specs, out=tmp_path / "cut", resume=True, **kw)
    for a, b in zip(full, again):
        ta, tb = load_file(str(a / WEIGHTS)), load_file(str(b / WEIGHTS))
        for name in ta:
            assert torch.equal(ta[name], tb[name]), (a, name)
    with pytest.raises(UntwineError, match="different run"):
        train_saes(syn.acts, specs[:2], out=tmp_path / "cut", resume=True, **kw)
    # the grouping is part of the run: resuming without saying it keeps the one it started with
    kw.pop("stack")
    assert train_saes(syn.acts, specs, out=tmp_path / "cut", resume=True, **kw) == again


def test_resume_with_an_optimiser_state_of_other_groups_is_one_error_line(syn, tmp_path):
    """A checkpoint written before ReLU's ``b_enc`` had its own Adam group (one group then)
    is refused with one line, not a ValueError's traceback."""
    from untwine.sae.runs import CHECKPOINT

    kw = {"steps": 10, "batch_size": 256, "seed": 0, "progress": False}
    specs = [SAESpec("relu", 48, {})]
    assert train_saes(syn.acts, specs, out=tmp_path / "r", stop_after=4, checkpoint_every=2, **kw) == []
    path = tmp_path / "r" / CHECKPOINT
    state = torch.load(path, weights_only=True)
    osd = state["optims"][0]
    osd["param_groups"] = [dict(osd["param_groups"][0], params=[i for g in osd["param_groups"] for i in g["params"]])]
    torch.save(state, path)
    with pytest.raises(UntwineError, match="optimiser state does not fit"):
        train_saes(syn.acts, specs, out=tmp_path / "r", resume=True, **kw)


@pytest.mark.parametrize("stack", [True, False])
def test_sweep_trains_members_with_their_own_k(syn, tmp_path, stack):
    specs = [SAESpec("topk", 48, {"k": k}) for k in (2, 4)] + [SAESpec("mp", 32, {"k": 3})]
    dirs = train_saes(syn.acts, specs, out=tmp_path / "sw", steps=20, batch_size=256, progress=False, stack=stack)
    assert [d.name for d in dirs] == [s.label() for s in specs]
    for spec, d in zip(specs, dirs):
        s = evaluate_sae(d, syn.acts[:500])
        assert s["d_sae"] == spec.latents
        assert s["l0"] <= spec.hparams["k"] + 1e-9


# -- synthetic ---------------------------------------------------------------------------------
def test_synthetic_ground_truth():
    s = make_synthetic(64, 16, 20000, active=4, hierarchy=3, children=2, correlation=0.3, seed=0)
    assert s.acts.shape == (20000, 16) and s.dictionary.shape == (64, 16) and s.codes.shape == (20000, 64)
    assert np.allclose(np.linalg.norm(s.dictionary, axis=1), 1.0, atol=1e-5)
    assert s.codes.nnz / 20000 == pytest.approx(4.0, rel=0.05)
    assert np.allclose(s.codes @ s.dictionary, s.acts, atol=1e-4)
    fired = (s.codes > 0).toarray()
    freq = fired.mean(0)
    assert freq[3 * 3] > freq[-1]  # power law: early free features fire more often than late ones
    for p, kids in s.hierarchy:
        assert not (fired[:, kids].any(1) & ~fired[:, p]).any()  # a child only with its parent
        assert (fired[:, kids].sum(1) <= 1).all()


# -- command line ---------------------------------------------------------------------------------
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_train_encode_evaluate(tmp_path, capsys):
    syn_dir = tmp_path / "syn"
    assert cli_main(["sae", "synthetic", "--features", "32", "--dim", "8", "--samples", "3000", "--hierarchy", "2", "--out", str(syn_dir)]) == 0
    sae_dir = tmp_path / "sae"
    args = ["sae", "train", str(syn_dir / "acts.npy"), "--arch", "topk", "--latents", "32", "--k", "2", "--steps", "20", "--batch-size", "256", "--out", str(sae_dir), "--no-progress"]
    assert cli_main(args) == 0
    assert cli_main(["sae", "encode", str(sae_dir), str(syn_dir / "acts.npy"), "--out", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (3000, 32) and ((codes != 0).sum(1) <= 2).all()
    out = tmp_path / "scores.json"
    assert cli_main(["sae", "evaluate", str(sae_dir), str(syn_dir / "acts.npy"), "--features", str(syn_dir / "features.npy"),
                     "--factors", str(syn_dir / "factors.npy"), "--metrics", "mig", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    for key in ("fvu", "mse", "l0", "mmcs", "recovered", "mcc", "absorption", "zf_deviation", "coherence_max", "mig"):
        assert key in scores
    capsys.readouterr()
    # a second train into the same directory needs --resume or --overwrite
    assert cli_main(args) == 2
    _one_error_line(capsys)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    base = ["sae", "train", str(tmp_path / "a.npy"), "--latents", "16", "--steps", "3", "--batch-size", "64", "--no-progress"]
    assert cli_main(base + ["--arch", "nope", "--out", str(tmp_path / "o1")]) == 2
    assert "unknown architecture" in _one_error_line(capsys)
    assert cli_main(base + ["--arch", "topk", "--k", "17", "--out", str(tmp_path / "o2")]) == 2
    assert "larger than the number of latents" in _one_error_line(capsys)
    assert cli_main(base + ["--arch", "topk", "--out", str(tmp_path / "o3")]) == 2
    assert "needs k" in _one_error_line(capsys)
    bad = x.copy()
    bad[5, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert cli_main(["sae", "train", str(tmp_path / "nan.npy"), "--arch", "topk", "--k", "2", "--latents", "16", "--steps", "3", "--batch-size", "64", "--out", str(tmp_path / "o4"), "--no-progress"]) == 2
    assert "row 5" in _one_error_line(capsys)
    assert cli_main(base + ["--arch", "topk", "--k", "2", "--out", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    np.save(tmp_path / "wide.npy", np.zeros((10, 9), np.float32))
    assert cli_main(["sae", "encode", str(tmp_path / "ok"), str(tmp_path / "wide.npy"), "--out", str(tmp_path / "c.npy")]) == 2
    assert "d_in = 8" in _one_error_line(capsys)
    assert cli_main(["sae", "evaluate", str(tmp_path / "ok"), str(tmp_path / "nan.npy")]) == 2
    assert "non-finite" in _one_error_line(capsys)
    assert cli_main(["sae", "encode", str(tmp_path / "missing"), str(tmp_path / "a.npy"), "--out", str(tmp_path / "c.npy")]) == 2
    _one_error_line(capsys)


def test_lm_activation_layer_directory_is_a_source(tmp_path):
    from safetensors.numpy import save_file

    x = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32)
    layer = tmp_path / "layer_1"
    layer.mkdir()
    save_file({"activations": x[:30], "sentence": np.arange(30)}, str(layer / "shard_00000.safetensors"))
    save_file({"activations": x[30:], "sentence": np.arange(30, 50)}, str(layer / "shard_00001.safetensors"))
    save_file({"activations": x[:5], "sentence": np.arange(5)}, str(layer / "shard_00002.safetensors"))  # not listed yet
    manifest = {"format": "untwine-activations", "version": 1, "dim": 6, "rows": 50,
                "shards": [{"file": "shard_00000.safetensors", "rows": 30}, {"file": "shard_00001.safetensors", "rows": 20}]}
    (layer / "manifest.json").write_text(json.dumps(manifest))
    s = open_activations(layer)
    assert (s.rows, s.dim) == (50, 6)
    assert np.array_equal(s.read(0, 50), x)


def test_untwine_loads_saelens_topk_saved_with_decoder_norm_rescaling(tmp_path):
    pytest.importorskip("sae_lens")
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    torch.manual_seed(0)
    theirs = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=16, d_sae=48, k=3, device="cpu"))
    with torch.no_grad():
        theirs.W_dec.mul_(torch.rand(48, 1) + 0.5)  # rows of different norms: the rescaling matters
        theirs.b_enc.normal_(0, 0.1)
        theirs.b_dec.normal_()
    theirs.save_inference_model(str(tmp_path / "sl"))
    assert json.loads((tmp_path / "sl" / CFG).read_text())["architecture"] == "topk"
    ours = load_sae(tmp_path / "sl")
    x = torch.randn(30, 16)
    with torch.no_grad():
        ref = theirs.decode(theirs.encode(x))
    assert torch.allclose(ours.reconstruct(x)[1], ref, atol=1e-5)
