"""Procedural dSprites / 3D shapes: determinism, factor effects, index round trip, CLI."""

import colorsys

import numpy as np
import pytest
import torch

from untwine.cli import main
from untwine.data import DATASETS, load
from untwine.data.dsprites import (
    ORIENTATIONS,
    SCALES,
    ColorDSprites,
    DSprites,
    NoisyDSprites,
    position_to_pixels,
    rasterize,
)
from untwine.data.shapes3d import Shapes3D
from untwine.errors import UntwineError


@pytest.fixture(scope="module")
def ds():
    return DSprites()


@pytest.fixture(scope="module")
def s3():
    return Shapes3D()


def _sweep(base, k, values):
    f = np.repeat(np.asarray(base, dtype=np.int64)[None], len(values), 0)
    f[:, k] = values
    return f


def test_registry_and_protocol():
    assert set(DATASETS) == {"dsprites", "color_dsprites", "noisy_dsprites", "shapes3d", "sines", "concepts"}
    d = load("dsprites")
    assert d.factor_sizes == (3, 6, 40, 32, 32) and d.num_samples == 737_280 and d.binary
    s = load("shapes3d")
    assert s.factor_sizes == (10, 10, 10, 8, 4, 15) and s.num_samples == 480_000 and not s.binary
    with pytest.raises(UntwineError, match="dsprites, color_dsprites, noisy_dsprites, shapes3d"):
        load("not_a_dataset")


@pytest.mark.parametrize("name", ["dsprites", "color_dsprites", "noisy_dsprites", "shapes3d"])
def test_determinism_shape_range(name):
    d1, d2 = load(name), load(name)
    n = 6 if name == "shapes3d" else 16  # each new shapes3d geometry is ray cast once (~0.05 s)
    f = d1.sample_factors(n, np.random.default_rng(0))
    assert np.array_equal(f, d2.sample_factors(n, np.random.default_rng(0)))
    x1, x2 = d1.observations(f), d2.observations(f)
    assert x1.dtype == torch.float32 and tuple(x1.shape) == (n, *d1.observation_shape)
    assert torch.equal(x1, x2)
    assert float(x1.min()) >= 0.0 and float(x1.max()) <= 1.0
    # a single row renders the same as within a batch
    assert torch.equal(d1.observations(f[3:4])[0], x1[3])


@pytest.mark.parametrize("name", ["dsprites", "shapes3d"])
def test_index_factor_round_trip(name):
    d = load(name)
    idx = np.random.default_rng(1).integers(0, d.num_samples, 500)
    assert np.array_equal(d.index_of(d.factors_of(idx)), idx)
    assert np.array_equal(d.factors_of([0])[0], np.zeros(d.num_factors))
    assert np.array_equal(d.factors_of([d.num_samples - 1])[0], np.asarray(d.factor_sizes) - 1)
    assert d.index_of([[0] * (d.num_factors - 1) + [1]])[0] == 1  # last factor fastest
    with pytest.raises(UntwineError):
        d.observations(np.full((1, d.num_factors), 99))


def test_dsprites_bank_matches_direct_rasteriser(ds):
    f = ds.sample_factors(300, np.random.default_rng(2))
    centre = position_to_pixels
    direct = rasterize(f[:, 0], SCALES[f[:, 1]], ORIENTATIONS[f[:, 2]], centre(f[:, 3]), centre(f[:, 4]))
    assert torch.equal(direct, ds.masks(f))
    assert set(torch.unique(ds.observations(f)).tolist()) == {0.0, 1.0}


def test_dsprites_area_grows_with_scale(ds):
    for shape in range(3):
        x = ds.observations(_sweep([shape, 0, 7, 16, 16], 1, np.arange(6)))
        area = x.sum((1, 2, 3)).numpy()
        assert np.all(np.diff(area) > 0), area
        # area ~ scale^2
        assert area[-1] / area[0] == pytest.approx(4.0, rel=0.15)


def _centroid(x):
    h, w = x.shape[-2:]
    m = x[:, 0]
    tot = m.sum((1, 2))
    cy = (m.sum(2) * torch.arange(h)).sum(1) / tot
    cx = (m.sum(1) * torch.arange(w)).sum(1) / tot
    return cx.numpy(), cy.numpy()


def test_dsprites_centroid_follows_position(ds):
    pos = np.arange(32)
    for shape in range(3):
        cx, cy = _centroid(ds.observations(_sweep([shape, 3, 5, 0, 10], 3, pos)))
        assert np.all(np.diff(cx) > 0) and np.ptp(cy) < 0.5
        assert np.allclose(np.diff(cx), 32 / 31, atol=0.5) and np.sum(np.diff(cx)) == pytest.approx(32, abs=0.5)
        cx, cy = _centroid(ds.observations(_sweep([shape, 3, 5, 20, 0], 4, pos)))
        assert np.all(np.diff(cy) > 0) and np.ptp(cx) < 0.5
    # sprites are never cut by the border: the largest rotated shapes keep their area
    full = ds.observations(_sweep([0, 5, 5, 16, 16], 3, [16]))
    edge = ds.observations(np.array([[0, 5, 5, 0, 0], [0, 5, 5, 31, 31]]))
    assert np.allclose(edge.sum((1, 2, 3)).numpy(), full.sum().item(), rtol=0.03)  # up to sub-pixel phase
    assert edge[..., 0, :].sum() == 0 and edge[..., -1, :].sum() == 0
    assert edge[..., :, 0].sum() == 0 and edge[..., :, -1].sum() == 0


def test_dsprites_geometry_matches_the_real_dataset(ds):
    """Numbers measured on the real dSprites images (dsprites.gif and the reloading notebook)."""
    # square at scale 1, orientation 0, posX = posY = 0: 20 x 20 pixels, columns/rows 6..25
    sq = ds.masks(np.array([[0, 5, 0, 0, 0]]))[0]
    rows, cols = torch.nonzero(sq, as_tuple=True)
    assert (int(cols.min()), int(cols.max()), int(rows.min()), int(rows.max())) == (6, 25, 6, 25)
    assert int(sq.sum()) == 400
    # the square's side at the six scales: 10, 12, ..., 20 pixels
    sides = [int(ds.masks(np.array([[0, k, 0, 0, 0]]))[0].sum(0).max()) for k in range(6)]
    assert sides == [10, 12, 14, 16, 18, 20]
    # rotated by ~45 degrees: about 368 pixels (a side of ~19.2 px)
    assert abs(int(ds.masks(np.array([[0, 5, 5, 0, 0]]))[0].sum()) - 368) <= 8
    # centre at posX = 0 is 16 px from the left edge; the 32 positions span 32 px
    assert position_to_pixels(0) == 16.0 and position_to_pixels(31) == 48.0
    assert np.all(np.abs(position_to_pixels(np.arange(32)) - (16 + 32 * np.arange(32) / 31)) <= 1 / 6 + 1e-9)
    cx, _ = _centroid(ds.observations(_sweep([0, 5, 0, 0, 0], 3, [0, 31])))
    assert cx[0] + 0.5 == pytest.approx(16.0) and cx[1] - cx[0] == pytest.approx(32.0)
    # the heart is smaller than the square (real: 222 and 400 pixels), 20 columns wide
    heart = ds.masks(np.array([[2, 5, 0, 0, 0]]))[0]
    assert abs(int(heart.sum()) - 222) <= 8 and int(heart.sum(0).gt(0).sum()) == 20
    # the ellipse's bounding box: 26 x 14 pixels at scale 1, 12 x 8 at scale 0.5
    for k, box in ((5, (26, 14)), (0, (12, 8))):
        e = ds.masks(np.array([[1, k, 0, 0, 0]]))[0]
        assert (int(e.sum(0).gt(0).sum()), int(e.sum(1).gt(0).sum())) == box


def test_dsprites_orientation(ds):
    # heart (no rotational symmetry): every orientation but the duplicate 2pi differs
    x = ds.observations(_sweep([2, 5, 0, 16, 16], 2, np.arange(40))).reshape(40, -1)
    assert torch.equal(x[0], x[39])  # 0 and 2pi, as in the original grid
    diffs = [(x[i] != x[j]).sum().item() for i in range(39) for j in range(i + 1, 39)]
    assert min(diffs) > 0
    # rotation preserves area (up to rasterisation)
    area = x.sum(1)
    assert (area.max() - area.min()) / area.mean() < 0.08
    # square has 4-fold symmetry: orientation 0 and 90 degrees (index ~9.75) are close
    sq = ds.observations(_sweep([0, 5, 0, 16, 16], 2, [0, 10])).reshape(2, -1)
    ell = ds.observations(_sweep([1, 5, 0, 16, 16], 2, [0, 10])).reshape(2, -1)
    assert (sq[0] != sq[1]).sum() < (ell[0] != ell[1]).sum()
    # the three shapes differ
    shapes = ds.observations(_sweep([0, 5, 3, 16, 16], 0, [0, 1, 2])).reshape(3, -1)
    assert all((shapes[i] != shapes[j]).sum() > 20 for i in range(3) for j in range(i + 1, 3))


def test_color_and_noisy_variants():
    f = DSprites().sample_factors(64, np.random.default_rng(3))
    mask = DSprites().masks(f)
    c = ColorDSprites(seed=5)
    x = c.observations(f)
    colors = c.colors(f)
    assert colors.min() >= 0.5 and colors.max() <= 1.0 and np.std(colors) > 0.05
    on = mask[:, None].expand_as(x) > 0
    assert torch.all(x[~on] == 0)
    assert torch.allclose(x.amax((2, 3)), torch.as_tensor(colors))
    assert not torch.equal(x, ColorDSprites(seed=6).observations(f))  # seed redraws colours
    rng_x = c.observations(f, rng=np.random.default_rng(0))
    assert not torch.equal(rng_x, x)

    n = NoisyDSprites(seed=1)
    y = n.observations(f)
    on = mask[:, None].expand_as(y) > 0
    assert torch.all(y[on] == 1.0)
    bg = y[~on]
    assert abs(bg.mean().item() - 0.5) < 0.01 and abs(bg.var().item() - 1 / 12) < 0.005
    assert not torch.equal(y[0, 0], y[1, 0])


def test_shapes3d_hues_change_their_regions(s3):
    base = np.array([2, 5, 8, 4, 2, 7])
    w = s3.region_weights(base[None])[0]
    regions = w[:3].argmax(0)  # 0 floor, 1 wall, 2 object
    for k in range(3):
        x = s3.observations(_sweep(base, k, np.arange(10)))
        region = (regions == k) & (w[k] > 0.3)
        changed = (x[0] != x[5]).any(0)
        assert changed[region].float().mean() > 0.99
        assert not changed[w[k] == 0].any()  # pixels without region k keep their colour
        assert (w[k] == 0).float().mean() > 0.05
        # the hue of the region's mean colour follows the factor
        for v in range(10):
            rgb = x[v][:, region].mean(1).numpy()
            hue = colorsys.rgb_to_hsv(*rgb)[0]
            assert min(abs(hue - v / 10), 1 - abs(hue - v / 10)) < 0.03, (k, v, hue)


def test_shapes3d_scale_shape_orientation(s3):
    base = np.array([0, 3, 6, 0, 0, 7])
    obj_area = []
    for shape in range(4):
        w = s3.region_weights(_sweep(np.r_[base[:4], shape, base[5]], 3, np.arange(8)))
        area = (w[:, 2] > 0).sum((1, 2)).numpy()
        assert np.all(np.diff(area) > 0), area
        obj_area.append(area)
    x = s3.observations(_sweep(base, 4, np.arange(4))).reshape(4, -1)
    assert all((x[i] - x[j]).abs().max() > 0.2 for i in range(4) for j in range(i + 1, 4))
    # orientation changes the sphere's image too (camera turns about the scene)
    sph = s3.observations(_sweep(np.r_[base[:4], 2, 0], 5, [0, 7, 14])).reshape(3, -1)
    assert (sph[0] - sph[1]).abs().sum() > 10 and (sph[1] - sph[2]).abs().sum() > 10


def test_shapes3d_calibrated_to_the_published_images(s3):
    """Numbers measured on the real 3dshapes images (3dshapes.gif, the notebook's sample grid)."""
    from untwine.data.shapes3d import SKY_RGB

    f = np.array([[0, 6, 3, 0, 0, 7]])  # red floor, smallest cube, orientation 0
    w = s3.region_weights(f)[0]
    x = s3.observations(f)[0]
    sky = w[4] > 0.5
    assert int(torch.nonzero(sky[:, 5]).max()) == 17 and not sky[20:].any()  # sky down to row 17
    assert torch.allclose(x[:, 2, 5], torch.as_tensor(SKY_RGB))
    assert int(torch.nonzero(w[0, :, 5] > 0.05).min()) == 41  # floor-wall line at row 41
    rows, cols = torch.nonzero(w[2] > 0.05, as_tuple=True)
    assert 55 <= int(rows.max()) <= 60 and abs((int(cols.min()) + int(cols.max())) / 2 - 31.5) <= 1
    # fully saturated colours: the lit floor is pure red
    assert torch.allclose(x[:, 62, 5], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_cli_datasets_list_and_show(tmp_path, capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "dsprites" in out and "737,280" in out and "480,000" in out
    png = tmp_path / "grid.png"
    assert main(["datasets", "show", "dsprites", "--out", str(png), "--seed", "1", "--cols", "5"]) == 0
    from PIL import Image

    img = Image.open(png)
    assert img.size[1] == 5 * (64 * 2 + 2)
    assert main(["datasets", "show", "nope", "--out", str(png)]) == 2
