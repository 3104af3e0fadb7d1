"""The training fast paths (hand-written gradients without autograd) against the
architectures' definitions, in float64: the gradient of one step, and the weights after a
few training steps, equal those of autograd on the plain definition."""

from __future__ import annotations

import pytest
import torch

from untwine.sae import ARCHITECTURES, sparse_grad
from untwine.sae.base import SparseAutoencoder


def _pair(arch, members, seed=0):
    out = []
    for _ in range(2):
        m = ARCHITECTURES[arch](16, 48, members, generator=torch.Generator().manual_seed(seed)).double()
        torch.manual_seed(4)
        with torch.no_grad():
            m.b_dec.normal_()
            m.b_enc.normal_(std=0.3)
            if arch == "jumprelu":  # thresholds spread over the pre-activations: some codes, some in the kernel's window
                m.log_threshold.copy_(torch.rand(m.log_threshold.shape, dtype=torch.float64) * 2 - 0.5)
            m.rows_since_fired[:, ::3] = 10**6  # dead latents: AuxK on
        out.append(m)
    return out


def _batchtopk_reference(m, x, dead_rows):
    """BatchTopK's loss as defined: dense ReLU codes, each member's k * B largest over the
    batch, dense decoding, AuxK on the latents dead once the batch is counted."""
    xc = m.centered(x)
    acts = m.pre_acts(x, xc).relu()
    M, B, h = acts.shape
    codes = []
    for j, k in enumerate(m.member_ints("k")):
        flat = acts[j].reshape(-1)
        idx = flat.detach().topk(k * B).indices
        codes.append(torch.zeros_like(flat).scatter(0, idx, flat[idx]).view(B, h))
    codes = torch.stack(codes)
    err = x.unsqueeze(0) - (codes @ m.W_dec + m.b_dec.unsqueeze(1))
    loss = err.pow(2).sum(-1).mean(-1)
    dead = m.dead_after((codes != 0).any(1), B, dead_rows)
    aux = m.auxk_loss(xc, err.detach(), dead)
    return (loss + m.aux_coefficient * aux).sum(), dead


def _autograd_step(m, x, dead_rows):
    """Autograd on the plain definition; returns the codes' fired latents."""
    for p in m.parameters():
        p.grad = None
    if m.name == "batchtopk":
        loss, _ = _batchtopk_reference(m, x, dead_rows)
    else:
        loss, _ = SparseAutoencoder.training_loss(m, x, progress=0.5, dead_rows=dead_rows)
    loss.backward()


@pytest.mark.parametrize("members", [[{"k": 3}], [{"k": 2}, {"k": 5}]])
def test_batchtopk_gradient_is_the_dense_definitions(members):
    fast, ref = _pair("batchtopk", members)
    assert fast.uses_hand_gradients()
    torch.manual_seed(5)
    x = torch.randn(12, 16, dtype=torch.float64) * 2 + 0.5
    terms, enc = fast.gradients(x, progress=0.5, dead_rows=1000)
    loss, dead = _batchtopk_reference(ref, x, 1000)
    loss.backward()
    assert "auxk" in terms and bool(dead.any())
    for name, p in ref.named_parameters():
        q = dict(fast.named_parameters())[name]
        assert q.grad.stride() == q.stride(), name
        assert torch.allclose(q.grad, p.grad, rtol=1e-9, atol=1e-12), (name, float((q.grad - p.grad).abs().max()))
    # the codes update_state sees: which latents fired, and the smallest kept value per member
    with torch.no_grad():
        acts = ref.pre_acts(x).relu()
    for j, k in enumerate(fast.member_ints("k")):
        top = acts[j].reshape(-1).topk(k * 12).values
        assert torch.allclose(enc.values[j][enc.values[j] > 0].min(), top[top > 0].min())
        assert int((enc.values[j] != 0).sum()) == int((top > 0).sum())


def test_batchtopk_picks_with_and_without_the_speed_hint_agree():
    m = ARCHITECTURES["batchtopk"](16, 48, [{"k": 3}])
    torch.manual_seed(0)
    for scale in (1.0, 1.0, 3.0, 0.2, 1.0):  # a guess too low, then too high: exact every time
        pre = torch.randn(1, 40, 48) * scale
        rows, cols, _ = m.batch_picks(pre)
        expect = pre.reshape(-1).topk(120).indices.sort().values
        assert torch.equal(rows * 48 + cols, expect)


def _train(m, xs, fast, dead_rows=60):
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for x in xs:
        if fast:
            _, enc = m.gradients(x, progress=0.5, dead_rows=dead_rows)
        else:
            _autograd_step(m, x, dead_rows)
            with torch.no_grad():
                enc = m.encode_batch(x, train=True)
        m.update_state(enc, x.shape[0])
        m.remove_parallel_grad()
        opt.step()
        m.renorm_decoder()
    return m


DENSE_OR_PICKS = [0.0, 1.0]  # sparse_grad.DENSE_FROM: always dense products, always picks
RELU = [{"l1_coefficient": 0.5}, {"l1_coefficient": 2.0}]
JUMPRELU = [{"l0_coefficient": 0.5, "bandwidth": 0.6}, {"l0_coefficient": 2.0, "bandwidth": 0.6}]


@pytest.mark.parametrize("dense_from", DENSE_OR_PICKS)
@pytest.mark.parametrize("arch,members", [("relu", RELU), ("jumprelu", JUMPRELU), ("jumprelu", JUMPRELU[:1])])
def test_relu_and_jumprelu_gradients_are_autograds_on_both_paths(arch, members, dense_from, monkeypatch):
    monkeypatch.setattr(sparse_grad, "DENSE_FROM", dense_from)
    fast, ref = _pair(arch, members)
    torch.manual_seed(5)
    x = torch.randn(12, 16, dtype=torch.float64) * 2 + 0.5
    terms, _ = fast.gradients(x, progress=0.02, dead_rows=1000)  # relu: inside the penalty's warm-up
    loss, t_ref = SparseAutoencoder.training_loss(ref, x, progress=0.02, dead_rows=1000)
    loss.backward()
    assert set(terms) == set(t_ref)
    for k in t_ref:
        assert torch.allclose(terms[k].double(), t_ref[k].double(), rtol=1e-10, atol=1e-12), k
    for name, p in ref.named_parameters():
        q = dict(fast.named_parameters())[name]
        assert q.grad.stride() == q.stride(), name
        assert torch.allclose(q.grad, p.grad, rtol=1e-9, atol=1e-12), (name, float((q.grad - p.grad).abs().max()))
    if arch == "jumprelu":
        assert bool((fast.log_threshold.grad != 0).any())  # the window held some pre-activations


@pytest.mark.parametrize("dense_from", DENSE_OR_PICKS)
@pytest.mark.parametrize("arch,members", [("batchtopk", [{"k": 3}, {"k": 5}]), ("relu", RELU), ("jumprelu", JUMPRELU)])
def test_training_with_the_fast_path_ends_where_autograd_does(arch, members, dense_from, monkeypatch):
    monkeypatch.setattr(sparse_grad, "DENSE_FROM", dense_from)
    fast, ref = _pair(arch, members)
    torch.manual_seed(6)
    xs = [torch.randn(20, 16, dtype=torch.float64) * 2 + 0.5 for _ in range(12)]
    _train(fast, xs, True)
    _train(ref, xs, False)
    for name, p in ref.state_dict().items():
        assert torch.allclose(fast.state_dict()[name], p, rtol=1e-7, atol=1e-9), name


def test_the_training_adam_matches_torch_adam_and_shares_its_state_dicts():
    """untwine.sae.adam.Adam (no torch.optim start-up cost) takes torch.optim.Adam's fused
    steps exactly, with lr changed between steps as the loop does, and their state dicts
    load into each other (checkpoints stay interchangeable)."""
    from untwine.sae.adam import Adam

    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    mine = Adam([{"params": a[:1], "lr_scale": 1.0}, {"params": a[1:], "lr_scale": 0.5}], 1e-2)
    ref = torch.optim.Adam([{"params": b[:1]}, {"params": b[1:]}], lr=1e-2, betas=(0.9, 0.999), fused=True)
    for step in range(6):
        g = [torch.randn_like(p) for p in a]
        for opt, ps in ((mine, a), (ref, b)):
            for pg, scale in zip(opt.param_groups, (1.0, 0.5)):
                pg["lr"] = 1e-2 * scale / (step + 1)
            for p, gi in zip(ps, g):
                p.grad = gi.clone()
            opt.step()
        for p, q in zip(a, b):
            assert torch.equal(p, q)
    back = torch.optim.Adam([{"params": b[:1]}, {"params": b[1:]}], lr=1e-2, fused=True)
    back.load_state_dict(mine.state_dict())
    again = Adam([{"params": a[:1], "lr_scale": 1.0}, {"params": a[1:], "lr_scale": 0.5}], 1e-2)
    again.load_state_dict(ref.state_dict())
    for i, p in enumerate(a):
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(back.state[b[i]][k], ref.state[b[i]][k]), k
            assert torch.equal(again.state[p][k], mine.state[p][k]), k
