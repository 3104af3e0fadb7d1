"""InfoWGAN-GP / QLInfoWGAN-GP: the paper's defaults, the critic/generator schedule, the quantized
prior and head, and the run layer (train, exact resume, evaluate, traverse, report)."""

import numpy as np
import pytest
import torch

from untwine.models import MODELS, build_model
from untwine.train import evaluate_run, load, train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _toy_grid():
    f = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
    for i, (x, y, s) in enumerate(f):
        imgs[i, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1
    return imgs, f


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    imgs, f = _toy_grid()
    np.savez(root / "toy.npz", images=imgs, factors=f)
    return root


def test_registered_with_the_papers_defaults():
    for name in ("infowgan_gp", "qlinfowgan_gp"):
        m = build_model(name, (1, 16, 16), num_factors=3)
        hp = m.hparams
        assert MODELS[name] is type(m)
        assert (hp["learning_rate"], hp["adam_beta1"], hp["adam_beta2"]) == (2e-4, 0.0, 0.9)
        assert (hp["critic_steps"], hp["lambda_gradient"], hp["lambda_latent"]) == (5, 10.0, 200.0)
        assert m.num_latents == 6  # twice the factors
        assert set(m.make_optimizers()) == {"critic", "generator"}
    assert build_model("qlinfowgan_gp", (1, 16, 16)).hparams["num_values"] == 10


def test_generator_updates_once_per_five_critic_steps():
    torch.manual_seed(0)
    m = build_model("infowgan_gp", (1, 16, 16), num_latents=3)
    opts = m.make_optimizers()
    x = torch.rand(8, 1, 16, 16)
    gen0 = [p.detach().clone() for p in m.decoder.parameters()]
    for step in range(5):
        crit = [p.detach().clone() for p in m.critic.parameters()]
        terms = m.training_step(x, step, opts)
        assert any(not torch.equal(a, b) for a, b in zip(crit, m.critic.parameters()))
        unchanged = all(torch.equal(a, b) for a, b in zip(gen0, m.decoder.parameters()))
        assert unchanged == (step < 4)
        assert ("generator_loss" in terms) == (step == 4)
        assert np.isfinite(terms["loss"]) and terms["gradient_penalty"] >= 0


def test_quantized_prior_and_head_use_the_codebook():
    torch.manual_seed(0)
    m = build_model("qlinfowgan_gp", (1, 16, 16), num_latents=4, num_values=5)
    values = m.codebook.detach()
    z = m.sample_prior(64)
    assert all(torch.isin(z[:, j], values[j]).all() for j in range(4))
    code, logvar = m.encode_dist(torch.rand(6, 1, 16, 16))
    assert logvar is None and all(torch.isin(code[:, j], values[j]).all() for j in range(4))
    u = build_model("infowgan_gp", (1, 16, 16), num_latents=4).sample_prior(500)
    assert u.min() >= 0 and u.max() < 1  # UniformLatent: U[0, 1)
    with torch.no_grad():
        images = m.decode(z)
    assert images.shape == (64, 1, 16, 16) and 0 <= float(images.min()) and float(images.max()) <= 1


def test_train_resume_evaluate_traverse_report(toy, tmp_path):
    from untwine.viz.report import build_report
    from untwine.viz.traversal import traverse_run

    data = str(toy / "toy.npz")
    full = train("qlinfowgan_gp", data, steps=10, out=tmp_path / "full", batch_size=8, seed=0, set={"checkpoint_every": 5})
    train("qlinfowgan_gp", data, steps=5, out=tmp_path / "part", batch_size=8, seed=0, set={"checkpoint_every": 5})
    resumed = train("qlinfowgan_gp", data, steps=10, out=tmp_path / "part", batch_size=8, seed=0, resume=True,
                    set={"checkpoint_every": 5})
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    model = load(tmp_path / "full")
    assert torch.equal(model.codebook, full.model.codebook.cpu())
    scores = evaluate_run(tmp_path / "full", metrics="mig,reconstruction", write=False, num_train=100, num_test=50)
    assert np.isfinite(scores["reconstruction"])
    assert traverse_run(tmp_path / "full", num_samples=50).stat().st_size > 0
    assert "qlinfowgan_gp" in build_report(tmp_path / "full", num_samples=60).read_text()


def test_direction_methods_run_on_a_frozen_gan(toy, tmp_path):
    from untwine.directions import Generator, get_method
    from untwine.train.run import open_run

    train("qlinfowgan_gp", str(toy / "toy.npz"), steps=5, out=tmp_path / "gan", batch_size=8, seed=0)
    run = open_run(tmp_path / "gan")
    model = run.load_model()
    for p in model.parameters():
        p.requires_grad_(False)  # as `untwine directions` loads it
    gen = Generator(model, run.dataset(), seed=0)
    assert gen.kind == "prior"
    for name, options in (("householder", {"steps": 5, "batch_size": 8}), ("sefa", {}), ("gradctrl", {"steps": 5})):
        found = get_method(name).fn(gen, 3, **options)
        assert found.directions.shape == (3, 6) and np.allclose(np.linalg.norm(found.directions, axis=1), 1)
