"""Traversals, reconstructions, heatmaps and training curves on tiny stand-in models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from test_viz_toys import Blobs, BlobQuantized, BlobVAE
from untwine.errors import UntwineError
from untwine.metrics.activity import latent_activity
from untwine.viz import (
    codebook_values,
    curves_figure,
    heatmap_figure,
    make_traversal,
    normalized_mi,
    order_latents,
    read_log,
    reconstruction_image,
    save_reconstructions,
    save_traversal,
    traversal_figure,
    traversal_gif_frames,
)
from untwine.viz._images import to_uint8
from untwine.viz.traversal import encode_batches


@pytest.fixture(scope="module")
def sample():
    f, x = Blobs().sample(300, np.random.default_rng(0))
    return f, x


def centroid_rows(images):
    """Intensity centroid row of uint8 images [..., H, W, 3]."""
    w = images[..., 0].astype(np.float64)
    g = np.arange(w.shape[-2])
    return (w.sum(-1) * g).sum(-1) / w.sum((-1, -2))


def test_traversal_moves_only_what_the_latent_controls(sample):
    _, x = sample
    model = BlobVAE()
    means, logvars = encode_batches(model, x)
    act = latent_activity(means, logvars)
    trav = make_traversal(model, means[0], order=act["order"])
    # rows follow activity: the three informative latents first, the passive ones last
    assert set(trav.latents[:3]) == {0, 1, 2} and set(trav.latents[3:]) == {3, 4}
    assert trav.images.shape == (5, 10, 32, 32, 3) and trav.images.dtype == np.uint8
    np.testing.assert_allclose(trav.values[0], np.linspace(-2, 2, 10))
    row_y = trav.images[trav.latents.index(0)]
    cy = centroid_rows(row_y)
    assert np.all(np.diff(cy) > 0.5)  # the blob walks down as z0 grows
    for j in (3, 4):  # the decoder ignores passive latents: the row is constant
        row = trav.images[trav.latents.index(j)]
        assert np.all(row == row[:1])


def test_traversal_latent_selection_and_range(sample):
    _, x = sample
    model = BlobVAE()
    means, _ = encode_batches(model, x[:4])
    trav = make_traversal(model, means[1], latents=[2, 0], value_range=(-1, 1), steps=5)
    assert trav.latents == [2, 0] and trav.images.shape[:2] == (2, 5)
    np.testing.assert_allclose(trav.values, np.tile(np.linspace(-1, 1, 5), (2, 1)))
    # the middle column (value 0) of the z0 row is the decoded code with z0 = 0
    z = means[1].copy()
    z[0] = 0.0
    expect = to_uint8(model.decode(torch.tensor(z[None], dtype=torch.float32)).detach())[0]
    np.testing.assert_array_equal(trav.images[1, 2], expect)
    with pytest.raises(UntwineError, match=r"latent 7 does not exist: the model has 5 latents \(0\.\.4\)"):
        make_traversal(model, means[0], latents=[0, 7])
    with pytest.raises(UntwineError, match="LO < HI"):
        make_traversal(model, means[0], value_range=(1, -1))


def test_quantized_model_sweeps_its_codebook(sample):
    _, x = sample
    model = BlobQuantized(num_values=7)
    with torch.no_grad():
        model.codebook[2] = torch.linspace(1.5, -1.5, 7)  # unsorted codebook gets sorted
    cb = codebook_values(model)
    assert cb.shape == (5, 7) and np.all(np.diff(cb, axis=1) > 0)
    means, logvars = encode_batches(model, x[:50])
    assert logvars is None
    trav = make_traversal(model, means[0], latents=[0, 2], gaussian=False, codes=means)
    np.testing.assert_allclose(trav.values, cb[[0, 2]])
    assert trav.images.shape[:2] == (2, 7)


def test_deterministic_without_codebook_uses_code_range(sample):
    from untwine.viz.traversal import traversal_values

    model = BlobVAE()
    codes = np.array([[-1.0, 0, 0, 0, 0], [3.0, 0, 0, 0, 0]])
    v = traversal_values(model, [0], gaussian=False, codes=codes, steps=5)
    np.testing.assert_allclose(v[0], [-1, 0, 1, 2, 3])


def test_save_png_and_gif(sample, tmp_path):
    _, x = sample
    model = BlobVAE()
    means, _ = encode_batches(model, x[:2])
    trav = make_traversal(model, means[0], latents=[0, 1, 3], steps=6)
    png = save_traversal(trav, tmp_path / "t.png", title="toy")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 200
    gif = save_traversal(trav, tmp_path / "t.gif")
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 2 * 6 - 2  # forth and back
        assert im.size[0] > 3 * 128  # three panels side by side, enlarged to ~128 px
    frames = traversal_gif_frames(trav, scale=2)
    # the z0 panel changes between frames, the passive z3 panel never does
    w = 64 + 4
    assert not np.array_equal(frames[0][:, 4 : 4 + 64], frames[5][:, 4 : 4 + 64])
    assert np.array_equal(frames[0][:, 4 + 2 * w : 4 + 2 * w + 64], frames[5][:, 4 + 2 * w : 4 + 2 * w + 64])
    with pytest.raises(UntwineError, match="unsupported output type"):
        save_traversal(trav, tmp_path / "t.bmpx")
    assert traversal_figure(trav).axes


def test_reconstructions(sample, tmp_path):
    _, x = sample
    model = BlobVAE()
    img = reconstruction_image(model, x[:6], pad=2)
    assert img.shape == (2 * 34 + 2, 6 * 34 + 2, 3)
    top = img[2:34, 2:34]
    np.testing.assert_array_equal(top, to_uint8(x[:1])[0])  # inputs in the top row
    bottom = img[36:68, 2:34].astype(int)
    assert np.abs(bottom - top.astype(int)).max() <= 13  # the toy reconstructs within 0.05
    p = save_reconstructions(model, x[:6], tmp_path / "r.png")
    with Image.open(p) as im:
        assert im.size == (img.shape[1], img.shape[0])


def test_order_latents_groups_by_factor():
    m = np.array(
        [
            [0.0, 0.2, 0.0],  # latent 0 -> factor 1
            [0.9, 0.0, 0.0],  # latent 1 -> factor 0 (strong)
            [0.0, 0.0, 0.0],  # latent 2 -> nothing
            [0.3, 0.0, 0.1],  # latent 3 -> factor 0 (weaker)
            [0.0, 0.0, 0.7],  # latent 4 -> factor 2
        ]
    )
    assert order_latents(m).tolist() == [1, 3, 0, 4, 2]


def test_normalized_mi_and_heatmap(sample, tmp_path):
    f, x = sample
    means, _ = encode_batches(BlobVAE(), x)
    nmi = normalized_mi(means, f)
    assert nmi.shape == (5, 3)
    # each informative latent carries (almost) all of its own factor and little of the others
    assert nmi[0, 0] > 0.95 and nmi[1, 1] > 0.95 and nmi[2, 2] > 0.9
    assert nmi[0, 1] < 0.2 and nmi[1, 0] < 0.2
    o = order_latents(nmi).tolist()
    assert o[0] == 0 and o.index(0) < o.index(1) < o.index(2)
    fig = heatmap_figure(nmi, Blobs.factor_names, title="NMI", value_label="I/H")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(Blobs.factor_names)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(j) for j in o]
    with pytest.raises(UntwineError, match="2 factor names for 3 factors"):
        heatmap_figure(nmi, ["a", "b"])


def test_curves(tmp_path):
    p = tmp_path / "log.csv"
    steps = np.arange(10, 410, 10)
    lines = ["step,loss,recon,kl"] + [f"{s},{100 / s},{90 / s},{0.1 * s}" for s in steps]
    p.write_text("\n".join(lines) + "\n")
    log = read_log(tmp_path)
    assert set(log) == {"step", "loss", "recon", "kl"}
    np.testing.assert_allclose(log["kl"], 0.1 * steps)
    fig = curves_figure(log)
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["loss", "recon", "kl"]
    assert read_log(tmp_path / "missing") == {}
    with pytest.raises(UntwineError, match="no rows"):
        curves_figure({"step": np.array([])})


def test_heatmap_colour_scale_is_fixed_at_one():
    from untwine.viz.heatmaps import heatmap_figure

    fig = heatmap_figure(np.array([[0.24, 0.0], [0.1, 0.05]]), ["a", "b"])
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)  # 0.24 is drawn as 0.24, not as the top colour
    fig = heatmap_figure(np.array([[3.0, 0.0], [0.1, 0.05]]), ["a", "b"])
    assert fig.axes[0].images[0].get_clim() == (0.0, 3.0)


def test_smoothed_curve_does_not_lag():
    from untwine.viz.curves import _moving_average

    ramp = np.arange(100, dtype=float)
    smooth = _moving_average(ramp, 10)
    np.testing.assert_allclose(smooth[5:-5], ramp[5:-5])  # a trailing mean would sit 4.5 steps behind
    noisy = np.tile([0.0, 2.0], 50)
    np.testing.assert_allclose(_moving_average(noisy, 10)[10:-10], 1.0, atol=0.1)
