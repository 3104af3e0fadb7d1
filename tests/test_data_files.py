"""Real-file loaders on small files written in the exact formats (sub-grids)."""

import sys

import numpy as np
import pytest
import torch

from untwine.data import DSpritesFile, GenericNpz, MPI3DFile, Shapes3DFile, load
from untwine.data.dsprites import DSprites
from untwine.data.shapes3d import Shapes3D
from untwine.errors import UntwineError

# a 2x2x3x4x4 sub-grid of the dSprites classes
DS_SUB = [np.array([0, 2]), np.array([1, 5]), np.array([0, 10, 20]), np.array([0, 9, 20, 31]), np.array([3, 7, 12, 30])]


def _grid(sizes):
    return np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))


def _write_dsprites(path, compressed):
    sub = _grid([len(v) for v in DS_SUB])
    classes = np.stack([DS_SUB[k][sub[:, k]] for k in range(5)], 1)
    imgs = DSprites().observations(classes)[:, 0].numpy().astype(np.uint8)
    latents_classes = np.concatenate([np.zeros((len(classes), 1), np.int64), classes], 1)
    latents_values = latents_classes.astype(np.float64) / 10
    save = np.savez_compressed if compressed else np.savez
    metadata = np.array({"latents_sizes": np.array([1, 3, 6, 40, 32, 32])}, dtype=object)
    save(path, imgs=imgs, latents_classes=latents_classes, latents_values=latents_values, metadata=metadata)
    return sub, classes


@pytest.mark.parametrize("compressed", [True, False])
def test_dsprites_npz_subgrid(tmp_path, compressed):
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    sub, classes = _write_dsprites(path, compressed)
    d = load(str(path))
    assert isinstance(d, DSpritesFile) and d.binary and d.is_full_grid
    assert d.factor_sizes == (2, 2, 3, 4, 4) and d.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert d.observation_shape == (1, 64, 64)
    if not compressed:
        assert isinstance(d._images, np.memmap)
    else:
        assert d._packed_shape == (192, 64, 64)
    rows = np.random.default_rng(0).integers(0, 192, 40)
    x = d.observations(sub[rows])
    assert torch.equal(x, DSprites().observations(classes[rows]))
    assert np.array_equal(d.index_of(d.factors_of(rows)), rows)


def test_shapes3d_h5_subgrid(tmp_path):
    import h5py  # part of the test dependencies (untwine[test])
    sizes = (2, 2, 2, 2, 2, 3)
    sub = _grid(sizes)
    picks = [np.array([1, 7]), np.array([0, 4]), np.array([3, 9]), np.array([0, 7]), np.array([1, 2]), np.array([0, 7, 14])]
    full = np.stack([picks[k][sub[:, k]] for k in range(6)], 1)
    imgs = (Shapes3D().observations(full).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    values = [np.linspace(0, 0.9, 10)] * 3 + [np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)]
    labels = np.stack([values[k][full[:, k]] for k in range(6)], 1)
    perm = np.random.default_rng(1).permutation(len(sub))  # rows in any order still form the grid
    path = tmp_path / "3dshapes.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=imgs[perm])
        f.create_dataset("labels", data=labels[perm])
    d = load(str(path))
    assert isinstance(d, Shapes3DFile) and d.factor_sizes == sizes and d.is_full_grid
    assert d.observation_shape == (3, 64, 64)
    idx = np.array([5, 0, 95, 5, 42])
    x = d.observations(sub[idx])
    ref = torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(x, ref)
    assert np.allclose(d.factor_values[5], [-30, 0, 30])


def test_h5py_missing_gives_install_hint(tmp_path, monkeypatch):
    path = tmp_path / "3dshapes.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UntwineError, match=r"pip install untwine\[h5\]"):
        load(str(path))


def test_mpi3d_npz_subgrid(tmp_path):
    sizes = (2, 2, 1, 1, 1, 3, 3)
    n = int(np.prod(sizes))
    imgs = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "mpi3d_toy.npz"
    np.savez(path, images=imgs)
    with pytest.raises(UntwineError, match="factor_sizes"):
        load(str(path))
    d = load(str(path), factor_sizes=sizes)
    assert isinstance(d, MPI3DFile) and d.factor_names[0] == "object_color" and d.num_samples == n
    assert isinstance(d._images, np.memmap)
    f = np.array([[1, 0, 0, 0, 0, 2, 1], [0, 1, 0, 0, 0, 0, 0]])
    x = d.observations(f)
    assert torch.equal(x[0], torch.from_numpy(imgs[18 + 6 + 1]).permute(2, 0, 1).float() / 255)
    assert torch.equal(x[1], torch.from_numpy(imgs[9]).permute(2, 0, 1).float() / 255)


def test_generic_npz_full_grid_any_order(tmp_path):
    sizes = (3, 2, 4)
    grid = _grid(sizes)
    labels = np.stack([grid[:, 0] * 10 + 5, grid[:, 1] - 7, grid[:, 2] * 2], 1)  # arbitrary integer labels
    imgs = np.random.default_rng(0).random((len(grid), 8, 12, 2)).astype(np.float32)
    perm = np.random.default_rng(1).permutation(len(grid))
    path = tmp_path / "mine.npz"
    np.savez(path, images=imgs[perm], factors=labels[perm], factor_names=np.array(["a", "b", "c"]))
    d = load(path)
    assert isinstance(d, GenericNpz) and d.is_full_grid and d.factor_sizes == sizes
    assert d.factor_names == ("a", "b", "c") and d.observation_shape == (2, 8, 12) and not d.binary
    x = d.observations(grid[[0, 7, 23]])
    assert torch.allclose(x, torch.from_numpy(imgs[[0, 7, 23]]).permute(0, 3, 1, 2))
    f = d.sample_factors(100, np.random.default_rng(0))
    assert f.shape == (100, 3) and (f.max(0) < np.array(sizes)).all()


def test_generic_npz_not_a_grid(tmp_path):
    rng = np.random.default_rng(0)
    factors = np.array([[0, 0], [0, 1], [1, 0], [2, 1], [2, 1]])  # (1, 1) and (2, 0) missing, (2, 1) twice
    imgs = rng.integers(0, 2, (5, 16, 16)).astype(np.uint8)  # 0/1 uint8 -> binary
    path = tmp_path / "partial.npz"
    np.savez_compressed(path, images=imgs, factors=factors)
    d = load(str(path))
    assert not d.is_full_grid and d.binary and d.num_samples == 5 and d.factor_names == ("factor_0", "factor_1")
    f = d.sample_factors(200, rng)
    present = {tuple(r) for r in factors}
    assert {tuple(r) for r in f} == present
    assert torch.equal(d.observations(factors[:4]), torch.from_numpy(imgs[:4, None]).float())
    with pytest.raises(UntwineError, match=r"\(1, 1\) does not occur"):
        d.observations(np.array([[0, 0], [1, 1]]))
    assert np.array_equal(d.factors_of([3]), factors[[3]])
    got_f, got_x = d.sample(50, np.random.default_rng(1))
    rows = np.random.default_rng(1).integers(0, 5, 50)
    assert np.array_equal(got_f, factors[rows]) and torch.equal(got_x, torch.from_numpy(imgs[rows, None]).float())


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UntwineError, match="not found.*nothere.npz"):
        load(str(tmp_path / "nothere.npz"))
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(UntwineError, match="garbage.npz: not a readable .npz"):
        load(str(bad))
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(UntwineError, match=r"other.npz: unrecognised .npz contents \(found: x\)"):
        load(str(other))
    short = tmp_path / "dsprites_short.npz"
    np.savez(short, imgs=np.zeros((3, 64, 64), np.uint8), latents_classes=np.zeros((4, 6), np.int64))
    with pytest.raises(UntwineError, match="dsprites_short.npz"):
        load(str(short))
    notgrid = tmp_path / "dsprites_dupes.npz"
    lc = np.zeros((4, 6), np.int64)
    lc[:, 1] = [0, 0, 1, 0]
    lc[:, 2] = [0, 1, 0, 0]  # (0, 0) twice, (1, 1) missing
    np.savez(notgrid, imgs=np.zeros((4, 64, 64), np.uint8), latents_classes=lc)
    with pytest.raises(UntwineError, match="dsprites_dupes.npz: factor combinations repeat"):
        load(str(notgrid))
    lc[:, 2] = [0, 1, 0, 1]
    lc[:, 1] = [0, 0, 1, 1]
    lc = np.concatenate([lc, lc])
    np.savez(notgrid, imgs=np.zeros((8, 64, 64), np.uint8), latents_classes=lc)
    with pytest.raises(UntwineError, match=r"dsprites_dupes.npz: 8 rows but the factor grid \(2, 2, 1, 1, 1\) has 4"):
        load(str(notgrid))
    mism = tmp_path / "mism.npz"
    np.savez(mism, images=np.zeros((3, 8, 8)), factors=np.zeros((4, 2)))
    with pytest.raises(UntwineError, match="mism.npz: 'images' has 3 rows but 'factors' has 4"):
        load(str(mism))
    nanf = tmp_path / "nanf.npz"
    np.savez(nanf, images=np.zeros((2, 8, 8)), factors=np.array([[0.5], [1.0]]))
    with pytest.raises(UntwineError, match="nanf.npz: factors"):
        load(str(nanf))
    rng_bad = tmp_path / "range.npz"
    np.savez(rng_bad, images=np.full((2, 8, 8), 3.0), factors=np.array([[0], [1]]))
    with pytest.raises(UntwineError, match=r"range.npz: float 'images' must lie in \[0, 1\]"):
        load(str(rng_bad))
    truncated = tmp_path / "trunc_dsprites.npz"
    _write_dsprites(truncated, compressed=True)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UntwineError, match="trunc_dsprites.npz"):
        load(str(truncated))
    txt = tmp_path / "data.csv"
    txt.write_text("1,2")
    with pytest.raises(UntwineError, match="unsupported file type '.csv'"):
        load(str(txt))
    h5bad = tmp_path / "bad.h5"
    h5bad.write_bytes(b"nope")
    with pytest.raises(UntwineError, match="bad.h5: not a readable HDF5 file"):
        load(str(h5bad))
