"""The HTML report opens and renders in a real browser (headless Chromium).

CI installs Debian's ``chromium`` package (see .ci/run); without it this test fails
with a clear message instead of being skipped.  No selenium/playwright: Chromium's
``--dump-dom`` gives the DOM after the page's inline script has counted the images
that decoded, and ``--screenshot`` gives a picture of the page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_viz_toys import Blobs
from untwine.viz.report import build_report

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and Path("/usr/bin/chromium").is_file():
        exe = "/usr/bin/chromium"
    if exe is None:
        pytest.fail(
            "headless Chromium is required for the report browser test but `chromium` was not found; "
            "install it with `apt-get install -y chromium` (.ci/run does this)"
        )
    return exe


def run_chromium(args, tmp_path, timeout=120):
    profile = tmp_path / "chromium-profile"
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from untwine.train import train

    out = tmp_path_factory.mktemp("browser") / "run"
    train("beta_vae", Blobs(), steps=4, out=out, log_every=1, checkpoint_every=4, batch_size=16, seed=0)
    return build_report(out, dataset=Blobs(), num_samples=240)


def test_page_and_images_render(report, tmp_path):
    proc = run_chromium(["--virtual-time-budget=10000", "--dump-dom", report.resolve().as_uri()], tmp_path)
    dom = proc.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, "no <body> in the rendered DOM"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-report-ready") == "1", "the page's script did not run"
    total, rendered = int(attrs["data-images-total"]), int(attrs["data-images-rendered"])
    assert total == 6  # traversal grid + animation, reconstructions, 2 heatmaps, curves
    assert rendered == total, f"only {rendered} of {total} images decoded in the browser"
    for heading in ("Configuration", "Metrics", "Latent traversals", "Reconstructions",
                    "Factor x latent heatmaps", "Active and passive latents", "Training curves"):
        assert f">{heading}</h2>" in dom


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    run_chromium(["--window-size=1280,3000", f"--screenshot={shot}", report.resolve().as_uri()], tmp_path)
    with Image.open(shot) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[:2] == (3000, 1280)
    # a rendered page: the dark header band at the top, many colours (images, heatmaps), not one flat colour
    assert arr[:40].mean() < 120
    assert len(np.unique(arr.reshape(-1, 3)[::7], axis=0)) > 200
    assert arr.std() > 20


@pytest.fixture(scope="module")
def disentangled_report(tmp_path_factory):
    """The page of a model built to be disentangled (BlobVAE: z0 = pos_y, z1 = pos_x, z2 = width,
    z3 and z4 passive), with the findings `untwine evaluate` records."""
    from test_viz_toys import BlobVAE
    from untwine.metrics.activity import latent_activity
    from untwine.train.evaluate import run_findings
    from untwine.viz.report import report_html
    from untwine.viz.traversal import encode_batches

    ds = Blobs()
    f, x = ds.sample(600, np.random.default_rng(0))
    mean, logvar = encode_batches(BlobVAE(), x)
    findings = run_findings(mean, np.asarray(f), ds, latent_activity(mean, logvar))
    page = report_html(BlobVAE(), ds, metrics={"mig": 0.71, "dci_disentanglement": 0.93},
                       evaluation={"findings": findings}, num_samples=240)
    path = tmp_path_factory.mktemp("disentangled") / "report.html"
    path.write_text(page)
    return path


def test_opening_paragraph_is_visible_at_the_top_and_names_factors(disentangled_report, tmp_path):
    proc = run_chromium(["--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom",
                         disentangled_report.resolve().as_uri()], tmp_path)
    dom = proc.stdout
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))
    assert attrs.get("data-report-ready") == "1"
    # rendered, with height, and inside the first screen of a 900-pixel-high window
    assert int(attrs["data-summary-height"]) > 0 and int(attrs["data-summary-top"]) < 900
    assert re.findall(r'<section id="([^"]+)"', dom)[0] == "summary"
    text = re.search(r'id="summary-text">([^<]*)<', dom).group(1)
    assert "pos_y -&gt; z0" in text and "pos_x -&gt; z1" in text and "width -&gt; z2" in text
    assert "2 of 5 latents are passive (carry nothing): z3, z4." in text
