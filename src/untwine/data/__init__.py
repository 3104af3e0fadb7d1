"""Ground-truth datasets: built-in procedural renderers and real-file loaders.

``load(name_or_path, **kwargs)`` returns a :class:`GroundTruthDataset`:

* by registry name (no files, rendered on the fly): ``"dsprites"``,
  ``"color_dsprites"``, ``"noisy_dsprites"`` (:mod:`untwine.data.dsprites`) and
  ``"shapes3d"`` (:mod:`untwine.data.shapes3d`); keyword arguments go to the class
  (e.g. ``seed`` for the colour / noise of the dSprites variants);
* by path (:mod:`untwine.data.dataset_files`): a dSprites ``.npz``, a 3dshapes ``.h5``, an
  MPI3D ``.npz`` or a generic ``.npz`` with ``images`` and ``factors``, recognised from
  the file type and the arrays it holds;
* labelled time series (:mod:`untwine.data.series`): a UCR/UEA name bundled with aeon
  (``"GunPoint"``), a folder with ``NAME_TRAIN``/``NAME_TEST`` files, a ``.ts`` file, a
  ``NAME_TRAIN.csv`` / ``.tsv`` table (UCR layout) or an ``.npz`` with ``X_train``/``y_train`` (or ``X``/``y``):
  one split (``split="train"`` or ``"test"``) as a dataset with the factor ``label``;
  ``seed`` / ``test_fraction`` split a lone file.

``DATASETS`` maps each registry name to its class; ``list_datasets()`` lists the names.
Batches for training come from :func:`untwine.data.torch_data.make_loader`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from untwine.data.base import GroundTruthDataset
from untwine.data.concepts import ConceptSentences
from untwine.data.dsprites import ColorDSprites, DSprites, NoisyDSprites
from untwine.data.dataset_files import DSpritesFile, MPI3DFile, Shapes3DFile, _Npz
from untwine.data.generic_npz import GenericNpz
from untwine.data.series import bundled_series, load_series
from untwine.data.shapes3d import Shapes3D
from untwine.data.sines import Sines
from untwine.data.torch_data import GridDataset, GroundTruthBatches, batch_rng, make_loader
from untwine.errors import UntwineError
from untwine.registry import Registry

#: registry name -> dataset class (built-in, generated on the fly)
DATASETS: Registry[type[GroundTruthDataset]] = Registry("dataset", "built-in datasets")
DATASETS.update({
    "dsprites": DSprites,
    "color_dsprites": ColorDSprites,
    "noisy_dsprites": NoisyDSprites,
    "shapes3d": Shapes3D,
    "sines": Sines,
    "concepts": ConceptSentences,
})


def list_datasets() -> list[str]:
    """Names of the built-in datasets, in registry order."""
    return list(DATASETS)


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or Path(s).suffix.lower() in (".npz", ".h5", ".hdf5") or Path(s).exists()


_SERIES_SUFFIXES = (".ts", ".csv", ".tsv", ".txt")


def _is_series(text: str) -> bool:
    """Whether ``text`` names labelled series: a bundled name, a series folder or file, a series ``.npz``."""
    p = Path(os.path.expanduser(text))
    if p.is_dir() or (p.is_file() and p.suffix.lower() == ".ts"):
        return True
    if p.is_file() and p.suffix.lower() in _SERIES_SUFFIXES:
        # a table is read as UCR-layout series when it is named like one (X_TRAIN.csv / X_TEST.csv)
        return p.stem.upper().endswith(("_TRAIN", "_TEST"))
    if p.is_file() and p.suffix.lower() == ".npz":
        try:
            with zipfile.ZipFile(p) as zf:
                members = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        except (OSError, zipfile.BadZipFile):
            return False
        return "X_train" in members or {"X", "y"} <= members
    return not p.exists() and text.lower() in {n.lower() for n in bundled_series()}


def _load_series(text: str, split: str = "train", **kwargs) -> GroundTruthDataset:
    try:
        return load_series(text, **kwargs).ground_truth(split)
    except TypeError as exc:
        raise UntwineError(f"series data set {text}: bad arguments ({exc})") from None


def open_file(path, **kwargs) -> GroundTruthDataset:
    """Open a dataset file, choosing the loader from its type and contents."""
    p = Path(os.path.expanduser(str(path)))
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return Shapes3DFile(p, **kwargs)
    if suffix == ".npz":
        npz = _Npz(p)
        names = set(npz.members)
        npz.zf.close()
        if {"imgs", "latents_classes"} <= names:
            return DSpritesFile(p, **kwargs)
        if {"images", "factors"} <= names:
            return GenericNpz(p, **kwargs)
        if "images" in names:
            return MPI3DFile(p, **kwargs)
        raise UntwineError(
            f"{p}: unrecognised .npz contents (found: {', '.join(sorted(names)) or 'none'}); expected "
            "'imgs'+'latents_classes' (dSprites), 'images' (MPI3D) or 'images'+'factors' (generic)"
        )
    if not p.exists():
        raise UntwineError(f"dataset file not found: {p}")
    raise UntwineError(f"{p}: unsupported file type {suffix or '(none)'!r}; expected .npz, .h5 or .hdf5")


def load(name_or_path, **kwargs) -> GroundTruthDataset:
    """A ground-truth dataset by registry name or from a file path (see module docstring)."""
    if isinstance(name_or_path, GroundTruthDataset):
        return name_or_path
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise UntwineError(f"dataset must be a name or a path, got {name_or_path!r}")
    key = name_or_path.strip().lower().replace("-", "_")
    if key in DATASETS:
        try:
            return DATASETS[key](**kwargs)
        except TypeError as exc:
            raise UntwineError(f"dataset {key!r}: bad arguments ({exc})") from None
    if _is_series(name_or_path):
        return _load_series(name_or_path, **kwargs)
    if _looks_like_path(name_or_path):
        try:
            return open_file(name_or_path, **kwargs)
        except TypeError as exc:
            raise UntwineError(f"dataset file {name_or_path}: bad arguments ({exc})") from None
    raise UntwineError(
        f"unknown dataset {name_or_path!r}; built-in datasets: {DATASETS.names()} "
        "(or give a path to a .npz / .h5 file, or labelled series: a .ts / .csv file or a UCR name with aeon installed)"
    )


__all__ = [
    "DATASETS",
    "load_series",
    "ColorDSprites",
    "ConceptSentences",
    "DSprites",
    "DSpritesFile",
    "GenericNpz",
    "GridDataset",
    "GroundTruthBatches",
    "GroundTruthDataset",
    "MPI3DFile",
    "NoisyDSprites",
    "Shapes3D",
    "Shapes3DFile",
    "batch_rng",
    "list_datasets",
    "load",
    "make_loader",
]
