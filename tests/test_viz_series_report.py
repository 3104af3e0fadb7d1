"""`untwine traverse` / `untwine report` on a run trained on time series (observations [C, T])."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
import torch
from PIL import Image

import untwine.api
from untwine.cli import main
from untwine.errors import UntwineError


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("series") / "run"
        untwine.api.train("dts", "sines", steps=20, out=out, device="cpu", hparams={"num_latents": 4})
        yield out
    finally:
        torch.set_num_threads(threads)


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int64)


def _has_curve_colour(px: np.ndarray) -> bool:
    """Some strongly red or blue pixels (the coolwarm / red curves), not only greys."""
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    return bool(np.any((r - g > 80) & (r - b > 60)) or np.any((b - r > 60) & (b - g > 30)))


def test_traverse_series_run_writes_curves_png(series_run, tmp_path, capsys):
    png = tmp_path / "trav.png"
    assert main(["traverse", str(series_run), "--out", str(png), "--num-samples", "64"]) == 0
    assert png.is_file()
    px = _pixels(png)
    assert px.shape[0] > 100 and px.shape[1] > 300
    assert px.std() > 10  # not a blank page
    assert _has_curve_colour(px)
    assert f"wrote {png}" in capsys.readouterr().out


def test_traverse_series_run_latents_and_range(series_run, tmp_path):
    png = tmp_path / "two.png"
    assert main(["traverse", str(series_run), "--out", str(png), "--latents", "2,0", "--range=-3,3",
                 "--steps", "5", "--num-samples", "32"]) == 0
    two = _pixels(png)
    png4 = tmp_path / "four.png"
    assert main(["traverse", str(series_run), "--out", str(png4), "--num-samples", "32"]) == 0
    # two panels are narrower than four (same row height)
    assert two.shape[1] < _pixels(png4).shape[1]


def test_traverse_series_run_refuses_gif_in_one_line(series_run, tmp_path, capsys):
    gif = tmp_path / "trav.gif"
    assert main(["traverse", str(series_run), "--out", str(gif), "--num-samples", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "GIF" in err and "series" in err and "\n" not in err
    assert not gif.exists()


def test_report_series_run_embeds_curve_plots(series_run, tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", str(series_run), "--out", str(page), "--num-samples", "300"]) == 0
    html = page.read_text()
    for anchor in ("config", "metrics", "traversals", "reconstructions", "heatmaps", "activity", "curves"):
        assert f'<section id="{anchor}">' in html
    assert "Not available" not in html
    imgs = re.findall(r'<img class="\w+" alt="([^"]*)" src="data:image/(\w+);base64,([^"]+)"', html)
    alts = [a for a, _, _ in imgs]
    assert alts == ["latent traversal curves", "reconstructions", "normalised MI heatmap",
                    "DCI importance heatmap", "training curves"]
    assert all(kind == "png" for _, kind, _ in imgs)  # no GIF animation for series
    assert "first sampled series" in html and "input series (solid)" in html
    assert "per value over 300 samples" in html
    for alt, _, data in imgs[:2]:
        path = tmp_path / f"{alt.replace(' ', '_')}.png"
        path.write_bytes(base64.b64decode(data))
        px = _pixels(path)
        assert px.std() > 10 and _has_curve_colour(px), alt
    # the active/passive table lists every latent
    assert all(f'<td class="k">z{j}</td>' in html for j in range(4))


def test_series_views_dispatch_on_shape(series_run):
    from untwine.data import load
    from untwine.train.run import open_run
    from untwine.viz.reconstructions import reconstruction_figure, reconstruction_image, reconstruct
    from untwine.viz.series import is_series, series_traversal
    from untwine.viz.traversal import traversal_plan

    assert is_series((1, 128)) and not is_series((1, 64, 64))
    model = open_run(series_run).load_model("cpu")
    _, x = load("sines").sample(5, np.random.default_rng(0))
    rec = reconstruct(model, x)
    assert rec.shape == tuple(x.shape)
    fig = reconstruction_figure(model, x)
    assert sum(ax.get_visible() and ax.axison for ax in fig.axes) == 5
    with pytest.raises(UntwineError, match="series"):
        reconstruction_image(model, x)
    # per-latent sweep values: row r of curves decodes the seed code with latent latents[r] set
    latents, values = traversal_plan(model, 4, latents=[3, 1], value_range=(-1.0, 1.0), steps=3)
    assert latents == [3, 1] and values.shape == (2, 3)
    values = values * np.array([[1.0], [0.5]])
    tr = series_traversal(model, x[0], latents=latents, values=values)
    assert tr["curves"].shape == (2, 3, 1, 128)
    with torch.no_grad():
        z0 = model.encode(x[:1])[0]
        z = z0.repeat(3, 1)
        z[:, 1] = torch.tensor(values[1], dtype=torch.float32)
        want = model.decode(z).numpy()
    np.testing.assert_allclose(tr["curves"][1, :, :, :], want, atol=1e-5)
    with pytest.raises(UntwineError, match="rows"):
        series_traversal(model, x[0], latents=[0], values=values)
