"""The torch adapters: whole-batch rendering, determinism, resumption, workers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from untwine.data import GridDataset, GroundTruthBatches, load, make_loader
from untwine.errors import UntwineError


def _take(loader, n):
    out = []
    for i, b in enumerate(loader):
        out.append(b)
        if i + 1 == n:
            break
    return out


def test_batches_shapes_and_determinism():
    d = load("dsprites")
    a = _take(make_loader(d, 32, seed=3), 4)
    b = _take(make_loader(d, 32, seed=3), 4)
    c = _take(make_loader(d, 32, seed=4), 1)
    for (xa, fa), (xb, fb) in zip(a, b):
        assert xa.shape == (32, 1, 64, 64) and xa.dtype == torch.float32 and fa.dtype == torch.int64
        assert torch.equal(xa, xb) and torch.equal(fa, fb)
        assert torch.equal(xa, d.observations(fa.numpy()))  # the images belong to the factors
    assert not torch.equal(a[0][1], c[0][1])
    assert not torch.equal(a[0][1], a[1][1])  # batches differ from step to step


@pytest.mark.parametrize("name,batch", [("color_dsprites", 16), ("shapes3d", 2)])
def test_resume_at_step_and_length(name, batch):
    d = load(name)
    full = list(make_loader(d, batch, seed=1, num_steps=5))
    assert len(make_loader(d, batch, seed=1, num_steps=5)) == 5 and len(full) == 5
    assert full[0][0].shape == (batch, *d.observation_shape)
    resumed = list(make_loader(d, batch, seed=1, start_step=3, num_steps=2))
    for (x1, f1), (x2, f2) in zip(full[3:], resumed):
        assert torch.equal(f1, f2) and torch.equal(x1, x2)
    assert torch.equal(GroundTruthBatches(d, batch, seed=1).batch(4)[1], full[4][1])


def test_workers_give_the_same_stream():
    d = load("dsprites")
    single = list(make_loader(d, 16, seed=7, num_steps=6))
    multi = list(make_loader(d, 16, seed=7, num_steps=6, num_workers=2))
    assert len(multi) == 6
    for (x1, f1), (x2, f2) in zip(single, multi):
        assert torch.equal(f1, f2) and torch.equal(x1, x2)


def test_grid_dataset_batches(tmp_path):
    d = load("dsprites")
    g = GridDataset(d)
    assert len(g) == 737_280
    x, f = g[1]
    assert x.shape == (1, 64, 64) and f.tolist() == [0, 0, 0, 0, 1]
    loader = DataLoader(g, batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(0))
    xb, fb = next(iter(loader))
    assert xb.shape == (10, 1, 64, 64) and torch.equal(xb, d.observations(fb.numpy()))
    # non-grid file: rows, including repeated combinations, come back as stored
    imgs = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4) * 5
    path = tmp_path / "rows.npz"
    np.savez(path, images=imgs, factors=np.array([[0, 1], [0, 1], [1, 0]]))
    gd = GridDataset(load(str(path)))
    assert len(gd) == 3
    assert torch.equal(gd[1][0], torch.from_numpy(imgs[1][None]).float() / 255)


def test_bad_arguments():
    d = load("dsprites")
    with pytest.raises(UntwineError, match="batch_size"):
        make_loader(d, 0)
    with pytest.raises(UntwineError, match="start_step"):
        make_loader(d, 4, start_step=-1)
    with pytest.raises(UntwineError, match="GroundTruthDataset"):
        make_loader(np.zeros(3), 4)
