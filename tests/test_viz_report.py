"""The HTML report, `untwine traverse` and `untwine report` on tiny real runs."""

from __future__ import annotations

import base64
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from test_viz_toys import Blobs, BlobVAE
from untwine.cli import main
from untwine.errors import UntwineError
from untwine.viz.report import build_report, report_html
from untwine.viz.traversal import traverse_run

IMG_SRC = re.compile(r'<img [^>]*src="data:(image/(?:png|gif));base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    from untwine.train import train

    out = tmp_path_factory.mktemp("runs") / "bvae"
    train("beta_vae", Blobs(), steps=4, out=out, log_every=1, checkpoint_every=4, batch_size=16, seed=0)
    return out


def embedded_images(page):
    return [(mime, base64.b64decode(data)) for mime, data in IMG_SRC.findall(page)]


def assert_self_contained(page):
    assert not re.search(r'(?:src|href)="(?!data:|#)', page), "the page refers to an external resource"
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page


def test_report_page_from_a_model():
    page = report_html(
        BlobVAE(), Blobs(), title="toy", config={"model": "blob_vae", "hparams": {"beta": 4}},
        metrics={"mig": 0.4321, "dci_disentanglement": 0.25},
        log={"step": np.arange(1, 41), "loss": np.linspace(5, 1, 40)}, num_samples=300,
    )
    assert_self_contained(page)
    imgs = embedded_images(page)
    # traversal grid, traversal animation, reconstructions, two heatmaps, curves
    assert [m for m, _ in imgs].count("image/png") == 5 and [m for m, _ in imgs].count("image/gif") == 1
    for mime, data in imgs:
        with Image.open(__import__("io").BytesIO(data)) as im:
            im.load()
            assert im.size[0] > 50 and im.size[1] > 20
    # metrics come from metrics.json when given; no "not run" warning
    assert "0.4321" in page and "has not been run" not in page
    for anchor in ("config", "metrics", "traversals", "reconstructions", "heatmaps", "activity", "curves"):
        assert f'id="{anchor}"' in page
    # the toy's passive latents are listed as passive, the three informative ones as active
    rows = re.findall(r"<tr( class=\"passive\")?><td class=\"k\">z(\d)</td>", page)
    status = {int(j): bool(p) for p, j in rows}
    assert status == {0: False, 1: False, 2: False, 3: True, 4: True}
    assert "3 of 5 latents active" in page
    assert "<td class=\"k\">hparams.beta</td><td>4</td>" in page


def test_without_metrics_json_the_page_asks_for_untwine_evaluate():
    page = report_html(BlobVAE(), Blobs(), metrics=None, num_samples=240, seed=3)
    assert "untwine evaluate</code> has not been run" in page
    # the report never computes a metric suite of its own: no score table, only the pictures
    section = page[page.index('id="metrics"'):page.index('id="traversals"')]
    assert "<table" not in section and "untwine evaluate RUN_DIR</code>" in section
    for key in ("mig", "dci_disentanglement", "gaussian_total_correlation"):
        assert f'<td class="k">{key}</td>' not in page, key
    # the representation comparison also comes from metrics.json only
    assert "--compare-representations" in page


def test_report_says_which_estimator_produced_dci():
    """DCI from the fast estimator is labelled as such (from metrics.json's label, else the
    evaluation settings), so that nobody compares it with a paper's GBT number unawares."""
    page = report_html(BlobVAE(), Blobs(), metrics={"dci_disentanglement": 0.5, "_dci_estimator": "fast"},
                       num_samples=240, seed=3)
    assert "DCI estimator: <b>fast</b> (untwine&#x27;s LightGBM estimator, not the GBT" in page
    page = report_html(BlobVAE(), Blobs(), metrics={"dci_completeness": 0.5}, evaluation={"dci_estimator": "gbt"},
                       num_samples=240, seed=3)
    assert "DCI estimator: <b>gbt</b> (scikit-learn&#x27;s GradientBoostingClassifier" in page
    assert "DCI estimator" not in report_html(BlobVAE(), Blobs(), metrics={"mig": 0.5}, num_samples=240, seed=3)


def test_comparison_table_comes_from_metrics_json():
    metrics = {"mig": 0.1, "mean.mig": 0.25, "sampled.mig": 0.125, "mean_active.mig": None}
    page = report_html(BlobVAE(), Blobs(), metrics=metrics, num_samples=240, seed=3)
    assert '<td class="k">mig</td><td>0.25</td><td>0.125</td><td>nan</td>' in page


def test_report_of_a_run_dir(vae_run):
    path = build_report(vae_run, dataset=Blobs(), num_samples=240)
    assert path == vae_run / "report.html"
    page = path.read_text()
    assert_self_contained(page)
    assert "beta_vae on blobs" in page and "step 4/4" in page
    # no metrics.json: say so (no suite computed here)
    assert "untwine evaluate</code> has not been run" in page
    assert "<td class=\"k\">mig</td>" not in page
    assert len(embedded_images(page)) == 6
    # with metrics.json, its numbers are shown instead
    (vae_run / "metrics.json").write_text(json.dumps({"mig": 0.123456, "infom": None}))
    (vae_run / "evaluation.json").write_text(json.dumps({"num_train": 777, "representation": "mean"}))
    try:
        page = build_report(vae_run, dataset=Blobs(), num_samples=240, out=vae_run / "r2.html").read_text()
        (vae_run / "metrics.json").write_text("{not json")
        with pytest.raises(UntwineError, match="metrics.json is not valid JSON"):
            build_report(vae_run, dataset=Blobs(), num_samples=240, out=vae_run / "r3.html")
    finally:
        (vae_run / "metrics.json").unlink()
        (vae_run / "evaluation.json").unlink()
    assert "has not been run" not in page
    assert '<td class="k">mig</td><td>0.1235</td>' in page
    assert '<td class="k">infom</td><td>nan</td>' in page  # null in metrics.json
    assert "num train 777" in page


def test_traverse_run(vae_run, tmp_path):
    png = traverse_run(vae_run, out=tmp_path / "t.png", dataset=Blobs(), num_samples=50, latents=[3, 0], steps=4)
    with Image.open(png) as im:
        assert im.format == "PNG"
    gif = traverse_run(vae_run, out=tmp_path / "t.gif", dataset=Blobs(), num_samples=50, value_range=(-1, 1))
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.is_animated and im.size[0] > 10 * 64  # one panel per latent


def test_traverse_quantized_run_uses_the_codebook(tmp_path):
    from untwine.train import train
    from untwine.viz.traversal import codebook_values, encode_batches, make_traversal

    run = train("qlae", Blobs(), steps=2, out=tmp_path / "q", log_every=1, checkpoint_every=2, batch_size=16)
    model = run.load_model()
    cb = codebook_values(model)
    assert cb is not None and cb.shape == (model.num_latents, 10)
    _, x = Blobs().sample(8, np.random.default_rng(0))
    means, logvars = encode_batches(model, x)
    assert logvars is None
    trav = make_traversal(model, means[0], latents=[0, 1], gaussian=False, codes=means)
    np.testing.assert_allclose(trav.values, cb[:2])


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_one_line_each(vae_run, tmp_path, capsys):
    # a directory that is not a run
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not an untwine run directory" in one_error_line(capsys)
    assert main(["traverse", str(tmp_path / "nothing-here")]) == 2
    assert "run directory not found" in one_error_line(capsys)
    # a run without a checkpoint
    bare = tmp_path / "bare"
    shutil.copytree(vae_run, bare)
    shutil.rmtree(bare / "checkpoints")
    assert main(["report", str(bare)]) == 2
    assert "has no checkpoint" in one_error_line(capsys)
    assert main(["traverse", str(bare)]) == 2
    assert "has no checkpoint" in one_error_line(capsys)
    # an unknown latent index
    assert main(["traverse", str(vae_run), "--latents", "0,12"]) == 2
    assert one_error_line(capsys) == "error: latent 12 does not exist: the model has 10 latents (0..9)"
    assert main(["traverse", str(vae_run), "--latents", "0,x"]) == 2
    assert "--latents expects comma-separated integers" in one_error_line(capsys)
    assert main(["traverse", str(vae_run), "--range=2,-2"]) == 2
    assert "LO < HI" in one_error_line(capsys)
    assert main(["traverse", str(vae_run), "--out", str(tmp_path / "t.jpg")]) == 2
    assert "--out must end in .png or .gif" in one_error_line(capsys)
    with pytest.raises(UntwineError, match="observations of shape"):
        build_report(vae_run, dataset=_WrongShape(), num_samples=60)


class _WrongShape(Blobs):
    observation_shape = (1, 16, 16)


def test_range_parsing():
    from untwine.cli import build_parser
    from untwine.commands.traverse import parse_range

    parser = build_parser()
    for argv in (["--range", "-2", "2"], ["--range=-2,2"]):
        args = parser.parse_args(["traverse", "RUN", *argv])
        assert parse_range(args.value_range) == (-2.0, 2.0)
    assert parse_range(["-2,2"]) == (-2.0, 2.0)
    assert parse_range(["-1.5", "3"]) == (-1.5, 3.0)
    assert parse_range(None) is None
    with pytest.raises(UntwineError, match="two numbers"):
        parse_range(["1,2,3"])
