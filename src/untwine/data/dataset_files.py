"""Ground-truth datasets read from files the user already has.

Formats (see ``shared/DATASETS.md``; nothing is ever downloaded):

* **dSprites** ``.npz`` (``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``): ``imgs``
  ``[N, 64, 64]`` uint8 0/1 and ``latents_classes`` ``[N, 6]``; the first latent
  (colour) is constant and dropped, leaving shape, scale, orientation, posX, posY.
  -> :class:`DSpritesFile`
* **3dshapes** ``.h5`` (``3dshapes.h5``): ``images`` ``[N, 64, 64, 3]`` uint8 and
  ``labels`` ``[N, 6]`` float (floor hue, wall hue, object hue, scale, shape,
  orientation).  Needs the optional ``h5py`` (``pip install untwine[h5]``).
  -> :class:`Shapes3DFile`
* **MPI3D** ``.npz`` (``mpi3d_toy.npz``, ``_realistic``, ``_real``): ``images``
  ``[N, 64, 64, 3]`` uint8 in grid order (6, 6, 2, 3, 3, 40, 40), last factor
  fastest; the factors are implied by the index.  -> :class:`MPI3DFile`
* **generic** ``.npz``: ``images`` ``[N, H, W]`` or ``[N, H, W, C]`` and ``factors``
  ``[N, K]`` (integer values, any labels), optionally ``factor_names`` ``[K]`` (strings).
  Each factor's distinct values become classes ``0..m-1`` in sorted order.  When the rows
  hold every combination exactly once the dataset is a full grid (any row order);
  otherwise ``is_full_grid`` is False, :meth:`sample_factors` draws existing rows and
  :meth:`observations` looks rows up by factor combination.  -> :class:`GenericNpz`

Evaluation (``untwine evaluate``) never tests on a row it trained its probes on: the
rows of a file are split once, by a seeded permutation, into train and test rows
(:meth:`FileDataset.evaluation_rows`, ``"held-out rows"``; see :mod:`untwine.data.base`).

Factor classes of the real files are recovered from the stored labels (each column's
distinct values in sorted order), so sub-grids written in the same format load too.

Loading is lazy where the format allows: ``.npz`` members stored without compression
(``np.savez``; the MPI3D files) are memory-mapped; compressed members
(``np.savez_compressed``; the dSprites file) are read once, dSprites images being kept
bit-packed (1 bit per pixel, 377 MB for the full file instead of 3 GB); the h5 file is
read on demand.  Observations are float32 ``[n, C, H, W]`` in [0, 1] (uint8 images are
divided by 255, 0/1 images are used as they are).

Every problem with a file raises :class:`~untwine.errors.UntwineError` with one line
naming the file and what is wrong.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from untwine.data.base import EvaluationRows, GroundTruthDataset
from untwine.errors import UntwineError

DSPRITES_FACTORS = ("shape", "scale", "orientation", "posX", "posY")
SHAPES3D_FACTORS = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
MPI3D_FACTORS = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
MPI3D_SIZES = (6, 6, 2, 3, 3, 40, 40)
_PROBE = 1000  # images inspected to decide the value range of generic images


# -- npz access -----------------------------------------------------------------------
class _Npz:
    """Read members of an ``.npz`` file, memory-mapping those stored uncompressed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise UntwineError(f"dataset file not found: {path}")
        if path.is_dir():
            raise UntwineError(f"{path}: is a directory, expected a dataset file")
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UntwineError(f"{path}: not a readable .npz file ({exc})") from None
        self.members = {n[:-4]: n for n in self.zf.namelist() if n.endswith(".npy")}

    def names(self) -> list[str]:
        return sorted(self.members)

    def require(self, *names: str) -> None:
        missing = [n for n in names if n not in self.members]
        if missing:
            raise UntwineError(
                f"{self.path}: no array {missing[0]!r} in the file (found: {', '.join(self.names()) or 'none'})"
            )

    def _header(self, fp):
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        return shape, fortran, dtype

    def array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """The member ``name``: a read-only memmap when stored, else loaded into memory."""
        self.require(name)
        info = self.zf.getinfo(self.members[name])
        try:
            if mmap and info.compress_type == zipfile.ZIP_STORED:
                with open(self.path, "rb") as fh:
                    fh.seek(info.header_offset)
                    local = fh.read(30)
                    name_len, extra_len = struct.unpack("<HH", local[26:30])
                    start = info.header_offset + 30 + name_len + extra_len
                    fh.seek(start)
                    shape, fortran, dtype = self._header(fh)
                    offset = fh.tell()
                if dtype.hasobject:
                    raise ValueError("object arrays are not supported")
                if int(np.prod(shape)) == 0:
                    return np.zeros(shape, dtype=dtype)
                return np.memmap(self.path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=offset)
            with self.zf.open(info) as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
        except UntwineError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a malformed file
            raise UntwineError(f"{self.path}: array {name!r} cannot be read ({exc})") from None

    def packed_binary_images(self, name: str, chunk: int = 4096) -> tuple[np.ndarray, tuple[int, ...]]:
        """Stream a compressed 0/1 image member into bit-packed rows ``[N, H*W/8]``."""
        self.require(name)
        info = self.zf.getinfo(self.members[name])
        try:
            with self.zf.open(info) as fp:
                shape, fortran, dtype = self._header(fp)
                if fortran or dtype.hasobject or len(shape) < 2:
                    raise ValueError(f"unsupported layout (shape {shape}, dtype {dtype})")
                n = shape[0]
                per = int(np.prod(shape[1:]))
                packed = np.empty((n, (per + 7) // 8), dtype=np.uint8)
                for start in range(0, n, chunk):
                    m = min(chunk, n - start)
                    raw = fp.read(m * per * dtype.itemsize)
                    if len(raw) != m * per * dtype.itemsize:
                        raise ValueError("file is truncated")
                    block = np.frombuffer(raw, dtype=dtype).reshape(m, per)
                    if block.size and (block.max() > 1 or block.min() < 0):
                        raise UntwineError(f"{self.path}: {name!r} must hold 0/1 pixels, found values up to {block.max()}")
                    packed[start : start + m] = np.packbits(block.astype(bool), axis=1)
        except UntwineError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise UntwineError(f"{self.path}: array {name!r} cannot be read ({exc})") from None
        return packed, tuple(shape)


# -- shared machinery -----------------------------------------------------------------------
def _classes(values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Map each column's distinct values to classes 0..m-1; return classes and values."""
    cols, uniq = [], []
    for k in range(values.shape[1]):
        u, inv = np.unique(values[:, k], return_inverse=True)
        cols.append(inv.reshape(-1))
        uniq.append(u)
    return np.stack(cols, axis=1).astype(np.int64), uniq


def _strides(sizes) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


def _grid_rows(path: Path, classes: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray | None:
    """Row of each grid index if ``classes`` is a full grid (None when rows are in grid
    order already); raise if it is not a full grid."""
    n = classes.shape[0]
    total = int(np.prod(sizes, dtype=np.int64))
    if n != total:
        raise UntwineError(f"{path}: {n} rows but the factor grid {tuple(sizes)} has {total} combinations")
    idx = classes @ _strides(sizes)
    if np.array_equal(idx, np.arange(n)):
        return None
    rows = np.full(total, -1, dtype=np.int64)
    rows[idx] = np.arange(n)
    if (rows < 0).any():
        raise UntwineError(f"{path}: factor combinations repeat, so the rows are not a full factor grid")
    return rows


class FileDataset(GroundTruthDataset):
    """A ground-truth dataset whose images are rows of an array read from a file.

    Subclasses fill ``path``, ``factor_names``, ``factor_sizes``, ``observation_shape``,
    ``binary``, ``_images`` and ``_grid_to_row`` (None: row ``i`` is grid index ``i``).
    """

    path: Path
    _images = None  # array-like [N, H, W(, C)]
    _scale: float = 1.0
    _packed_shape: tuple[int, ...] | None = None  # set when _images is bit-packed
    _grid_to_row: np.ndarray | None = None
    factor_values: tuple = ()

    def _rows_of(self, factors) -> np.ndarray:
        idx = self.index_of(factors)
        return idx if self._grid_to_row is None else self._grid_to_row[idx]

    def evaluation_rows(self, num_train: int, num_test: int, rng: np.random.Generator) -> EvaluationRows:
        """A file has no test split of its own: its rows (grid indices on full grids) are split
        once into train and test rows (:meth:`~untwine.data.base.GroundTruthDataset.held_out_rows`),
        so no test row is a train row, full grid or not."""
        return self.held_out_rows(num_train, num_test, rng)


    def images_of_rows(self, rows) -> torch.Tensor:
        """Float32 ``[n, C, H, W]`` observations of file rows ``rows``."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        uniq, inverse = np.unique(rows, return_inverse=True)  # sorted reads (h5py, memmap locality)
        try:
            raw = np.asarray(self._images[uniq])
        except Exception as exc:  # noqa: BLE001
            raise UntwineError(f"{self.path}: reading images failed ({exc})") from None
        if self._packed_shape is not None:
            per = int(np.prod(self._packed_shape[1:]))
            raw = np.unpackbits(raw, axis=1, count=per).reshape((len(uniq),) + tuple(self._packed_shape[1:]))
        raw = raw[inverse]
        x = torch.from_numpy(np.ascontiguousarray(raw))
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        x = x.to(torch.float32)
        if self._scale != 1.0:
            x.div_(round(1.0 / self._scale))  # exact division, as / 255
        if x.ndim == 3:
            x = x[:, None]
        else:
            x = x.permute(0, 3, 1, 2)
        return x.contiguous()

    def observations(self, factors) -> torch.Tensor:
        """Float32 ``[n, C, H, W]`` in [0, 1] for factor rows ``[n, K]``."""
        return self.images_of_rows(self._rows_of(self.check_factors(factors)))

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f"; file {self.path}>"


def _image_layout(path: Path, arr, name: str, channels_last_required: bool) -> tuple[int, ...]:
    shape = tuple(int(s) for s in arr.shape)
    if len(shape) == 3:
        if channels_last_required:
            raise UntwineError(f"{path}: {name!r} must be [N, H, W, C], got shape {shape}")
        return (1, shape[1], shape[2])
    if len(shape) == 4:
        return (shape[3], shape[1], shape[2])
    raise UntwineError(f"{path}: {name!r} must be [N, H, W] or [N, H, W, C], got shape {shape}")


# -- dSprites ------------------------------------------------------------------------------
class DSpritesFile(FileDataset):
    """The dSprites ``.npz`` (``imgs``, ``latents_classes``; colour latent dropped)."""

    binary = True

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.name = f"dsprites:{self.path.name}"
        npz = _Npz(self.path)
        npz.require("imgs", "latents_classes")
        latents = npz.array("latents_classes", mmap=False)
        if latents.ndim != 2 or latents.shape[1] != 6:
            raise UntwineError(f"{self.path}: 'latents_classes' must be [N, 6], got shape {tuple(latents.shape)}")
        if latents.dtype.kind not in "iuf":
            raise UntwineError(f"{self.path}: 'latents_classes' must be numeric, got dtype {latents.dtype}")
        if not np.all(latents[:, 0] == latents[0, 0]):
            raise UntwineError(f"{self.path}: the first latent (colour) is expected to be constant")
        classes, values = _classes(np.asarray(latents[:, 1:]))
        self.factor_names = DSPRITES_FACTORS
        self.factor_sizes = tuple(int(len(v)) for v in values)
        self.factor_values = tuple(values)
        info = npz.zf.getinfo(npz.members["imgs"])
        if info.compress_type == zipfile.ZIP_STORED:
            imgs = npz.array("imgs")
            shape = tuple(imgs.shape)
            self._images = imgs
        else:
            self._images, shape = npz.packed_binary_images("imgs")
            self._packed_shape = shape
        if len(shape) != 3:
            raise UntwineError(f"{self.path}: 'imgs' must be [N, H, W], got shape {shape}")
        if shape[0] != latents.shape[0]:
            raise UntwineError(f"{self.path}: 'imgs' has {shape[0]} images but 'latents_classes' has {latents.shape[0]} rows")
        self.observation_shape = (1, shape[1], shape[2])
        self._grid_to_row = _grid_rows(self.path, classes, self.factor_sizes)
        npz.zf.close()


# -- 3dshapes ---------------------------------------------------------------------------
class Shapes3DFile(FileDataset):
    """The 3dshapes ``.h5`` (``images``, ``labels``), read on demand with h5py."""

    binary = False
    _scale = 1.0 / 255.0

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.name = f"shapes3d:{self.path.name}"
        if not self.path.exists():
            raise UntwineError(f"dataset file not found: {self.path}")
        try:
            import h5py
        except ImportError:
            raise UntwineError(f"reading {self.path} needs h5py, which is not installed: pip install untwine[h5]") from None
        h5 = self._open()
        found = sorted(h5.keys())
        for key in ("images", "labels"):
            if key not in h5:
                raise UntwineError(f"{self.path}: no dataset {key!r} in the file (found: {', '.join(found) or 'none'})")
        images, labels = h5["images"], np.asarray(h5["labels"])
        if labels.ndim != 2 or labels.shape[1] != 6:
            raise UntwineError(f"{self.path}: 'labels' must be [N, 6], got shape {tuple(labels.shape)}")
        if len(images.shape) != 4 or images.shape[0] != labels.shape[0]:
            raise UntwineError(
                f"{self.path}: 'images' must be [N, H, W, 3] with N = {labels.shape[0]} labels, got shape {tuple(images.shape)}"
            )
        if images.dtype != np.uint8:
            raise UntwineError(f"{self.path}: 'images' must be uint8, got {images.dtype}")
        classes, values = _classes(labels)
        self.factor_names = SHAPES3D_FACTORS
        self.factor_sizes = tuple(int(len(v)) for v in values)
        self.factor_values = tuple(values)
        self.observation_shape = (int(images.shape[3]), int(images.shape[1]), int(images.shape[2]))
        self._grid_to_row = _grid_rows(self.path, classes, self.factor_sizes)

    def _open(self):
        """The h5 file, opened once per process (h5py handles must not cross a fork)."""
        import h5py

        if getattr(self, "_pid", None) != os.getpid():
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise UntwineError(f"{self.path}: not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
        return self._h5

    @property
    def _images(self):
        return self._open()["images"]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_h5", None)
        state.pop("_pid", None)
        return state


# -- MPI3D --------------------------------------------------------------------------------
class MPI3DFile(FileDataset):
    """An MPI3D ``.npz`` (``images`` in grid order 6,6,2,3,3,40,40, last fastest)."""

    binary = False
    _scale = 1.0 / 255.0

    def __init__(self, path, factor_sizes: tuple[int, ...] | None = None) -> None:
        self.path = Path(path)
        self.name = f"mpi3d:{self.path.stem}"
        npz = _Npz(self.path)
        npz.require("images")
        images = npz.array("images")
        sizes = tuple(int(s) for s in (factor_sizes or MPI3D_SIZES))
        if len(sizes) != len(MPI3D_FACTORS) or min(sizes) < 1:
            raise UntwineError(f"{self.path}: factor_sizes must be {len(MPI3D_FACTORS)} positive sizes, got {sizes}")
        self.observation_shape = _image_layout(self.path, images, "images", channels_last_required=True)
        total = int(np.prod(sizes))
        if images.shape[0] != total:
            raise UntwineError(
                f"{self.path}: {images.shape[0]} images but the MPI3D grid {sizes} has {total}; "
                "pass factor_sizes=(...) for a sub-grid file"
            )
        if images.dtype != np.uint8:
            raise UntwineError(f"{self.path}: 'images' must be uint8, got {images.dtype}")
        self.factor_names = MPI3D_FACTORS
        self.factor_sizes = sizes
        self._images = images
        self._grid_to_row = None
        npz.zf.close()
