"""factor_classifier: learns the factors, saves/resumes/loads, `untwine evaluate` writes its held-out
accuracies, and the paths that need a decoder (report, traverse, directions) say so in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_viz_toys import Blobs
from untwine.cli import main
from untwine.errors import UntwineError
from untwine.models import build_model
from untwine.models.encoder import ModelEncoder, decode_codes
from untwine.train import evaluate_run, load, open_run, train

SMALL = dict(num_train=100, num_test=300)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("clf") / "run"
    train("factor_classifier", Blobs(), steps=60, out=out, batch_size=32, seed=0, log_every=10, checkpoint_every=30)
    torch.set_num_threads(n)
    return out


def test_built_from_the_dataset_and_rebuilt_from_hparams():
    torch.manual_seed(0)
    m = build_model("factor_classifier", (1, 32, 32), num_factors=3, factor_sizes=[6, 6, 3], factor_names=["a", "b", "c"])
    assert m.hparams["factor_sizes"] == [6, 6, 3] and m.hparams["factor_names"] == ["a", "b", "c"]
    x = Blobs().sample(5, np.random.default_rng(0))[1]
    logits = m.logits(x)
    assert [lg.shape for lg in logits] == [(5, 6), (5, 6), (5, 3)]  # one softmax head per factor
    assert m.encode(x).shape == (5, 256) and m.num_latents == 256  # the penultimate dense layer
    assert torch.equal(m.encode(x), m.features(x)) and (m.encode(x) >= 0).all()  # after its ReLU
    clone = build_model(**m.hparams)
    clone.load_state_dict(m.state_dict())
    assert torch.equal(clone.predict(x), m.predict(x))
    with pytest.raises(UntwineError, match="factor sizes"):
        build_model("factor_classifier", (1, 32, 32), num_factors=3)
    with pytest.raises(UntwineError, match="does not match"):
        build_model("factor_classifier", (1, 32, 32), num_factors=2, factor_sizes=[6, 6, 3])
    with pytest.raises(UntwineError, match="pass the batch's factors"):
        m.training_step(x, 0, m.make_optimizers())
    with pytest.raises(UntwineError, match="has no decoder"):
        m.decode(m.encode(x))
    with pytest.raises(UntwineError, match="has no decoder"):
        decode_codes(m, np.zeros((2, 256)))


def test_training_raises_held_out_accuracy_well_above_chance(run_dir):
    log = open_run(run_dir).log()
    assert {"loss", "accuracy", "acc_pos_y", "acc_pos_x", "acc_width"} <= set(log)
    assert log["loss"][-1] < 0.5 * log["loss"][0]
    scores = evaluate_run(run_dir, dataset=Blobs(), metrics="accuracy", write=False, **SMALL)
    # the blob's row: 6 classes (chance 1/6); 60 steps of batch 32 already classify most test rows
    assert scores["accuracy.pos_y"] > 0.6 and scores["accuracy.pos_x"] > 0.6
    assert scores["accuracy_mean"] == pytest.approx(np.mean([scores[f"accuracy.{n}"] for n in Blobs.factor_names]))


def test_evaluate_accuracy_is_the_share_of_test_rows_predicted_exactly(run_dir):
    scores = evaluate_run(run_dir, dataset=Blobs(), metrics="accuracy", write=True, seed=3, **SMALL)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert {f"accuracy.{n}" for n in Blobs.factor_names} | {"accuracy_mean"} <= set(saved)
    # known answer: the test rows evaluate draws (dataset.evaluation_rows with its seed), predicted directly
    ds = Blobs()
    rows = ds.evaluation_rows(SMALL["num_train"], SMALL["num_test"], np.random.default_rng(3))
    model = load(run_dir)
    pred = model.predict(rows.test_dataset.observations_at(rows.test)).numpy()
    truth = rows.test_dataset.factors_of(rows.test)
    for k, name in enumerate(Blobs.factor_names):
        assert scores[f"accuracy.{name}"] == saved[f"accuracy.{name}"] == float(np.mean(pred[:, k] == truth[:, k]))


def test_all_skips_reconstruction_with_a_reason_and_explicit_requests_fail(run_dir, tmp_path):
    scores = evaluate_run(run_dir, dataset=Blobs(), metrics="all", write=True, num_train=100, num_test=60,
                          interventional_train=20, interventional_eval=10, interventional_batch=8)
    assert "accuracy.pos_y" in scores and "mig" in scores and "reconstruction" not in scores
    settings = json.loads((run_dir / "evaluation.json").read_text())
    assert "reconstruction" in settings["skipped"]
    assert settings["skipped_reasons"]["reconstruction"] == "factor_classifier has no decoder"
    with pytest.raises(UntwineError, match="metric reconstruction does not apply: factor_classifier has no decoder"):
        evaluate_run(run_dir, dataset=Blobs(), metrics="mig,reconstruction", write=False, **SMALL)
    vae = tmp_path / "vae"
    train("beta_vae", Blobs(), steps=2, out=vae, batch_size=8, seed=0)
    with pytest.raises(UntwineError, match="metric accuracy does not apply: beta_vae has no factor heads"):
        evaluate_run(vae, dataset=Blobs(), metrics="accuracy", write=False, **SMALL)
    assert "accuracy_mean" not in evaluate_run(vae, dataset=Blobs(), metrics="all", write=False, num_train=60, num_test=30,
                                               interventional_train=20, interventional_eval=10,
                                               interventional_batch=8, reference_scores=False)


def test_codes_are_the_evaluation_codes(run_dir):
    model = load(run_dir)
    x = Blobs().sample(7, np.random.default_rng(1))[1]
    codes = ModelEncoder(model).encode(x, posterior=True)
    with torch.no_grad():
        feats = model.features(x).double().numpy()
    assert np.array_equal(codes.codes, feats) and np.array_equal(codes.mean, feats) and codes.logvar is None


def test_resume_equals_the_uninterrupted_run(tmp_path):
    common = dict(batch_size=16, seed=2, log_every=1, checkpoint_every=3)
    train("factor_classifier", Blobs(), steps=6, out=tmp_path / "straight", **common)
    train("factor_classifier", Blobs(), steps=3, out=tmp_path / "resumed", **common)
    train("factor_classifier", Blobs(), steps=6, out=tmp_path / "resumed", resume=True, **common)
    a, b = load(tmp_path / "straight"), load(tmp_path / "resumed")
    assert a.hparams == b.hparams and a.hparams["factor_sizes"] == list(Blobs.factor_sizes)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    la, lb = open_run(tmp_path / "straight").log(), open_run(tmp_path / "resumed").log()
    assert all(np.array_equal(la[c], lb[c]) for c in la)
    # the saved config holds the model's own hyper-parameters, not the dataset's sizes
    assert "factor_sizes" not in open_run(tmp_path / "straight").config.hparams


def test_report_and_traverse_without_a_decoder(run_dir, capsys):
    from untwine.directions.base import Generator
    from untwine.viz.report import build_report
    from untwine.viz.traversal import traverse_run

    evaluate_run(run_dir, dataset=Blobs(), metrics="mig,accuracy", write=True, **SMALL)
    page = build_report(run_dir, num_samples=120, dataset=Blobs()).read_text()
    assert "No traversals: factor_classifier has no decoder" in page
    assert "No reconstructions: factor_classifier has no decoder" in page
    assert "Not available" not in page and "Traceback" not in page
    assert '<td class="k">accuracy.pos_y</td>' in page
    with pytest.raises(UntwineError, match="has no decoder"):
        traverse_run(run_dir)
    assert main(["traverse", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no decoder" in err and "Traceback" not in err
    with pytest.raises(UntwineError, match="no generator"):
        Generator(load(run_dir), Blobs())
