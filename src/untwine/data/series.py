"""Real labelled time series: the UCR/UEA sets bundled with aeon, and ``.ts`` / ``.npz`` / ``.csv`` files.

``load_series(name_or_path, *, seed=0, test_fraction=1/3) -> SeriesDataset``

These series carry class labels, not factors of variation: evaluate representations of
them with the downstream probes of :mod:`untwine.metrics.probes` on the dataset's own
train/test split.

Sources
-------
* **Bundled names** (``"GunPoint"``, ``"ArrowHead"``, ``"ItalyPowerDemand"``,
  ``"BasicMotions"``, ... - :func:`bundled_series` lists them): the UCR/UEA archive
  files (Dau et al., "The UCR Time Series Archive", 2019; Bagnall et al., "The UEA
  multivariate time series classification archive", 2018) that the ``aeon`` package
  ships inside its wheel (``aeon/datasets/data/NAME/NAME_{TRAIN,TEST}.ts``).  They are
  found through aeon's installed location (``importlib.util.find_spec``, without
  importing aeon, whose import pulls numba); nothing is downloaded.  Without aeon
  installed, give the folder holding the files as a path instead.
* **A folder** holding ``NAME_TRAIN.ts`` / ``NAME_TEST.ts`` (or ``.csv`` / ``.tsv``).
* **A ``.ts`` file** (sktime/aeon format; equal-length series without missing values
  or time stamps): ``X_TRAIN.ts`` is paired with ``X_TEST.ts`` beside it.  Reading is in
  :mod:`untwine.data.series_read`; ``bundled_series`` lists only the sets whose headers
  it accepts (not the unequal-length ones).
* **A ``.csv`` / ``.tsv`` file** in the UCR layout, one series per row, class label in
  the first column, values after it (univariate); ``X_TRAIN.csv`` is paired with
  ``X_TEST.csv``.  A lone file (no ``_TRAIN`` / ``_TEST`` pair) is split.
* **A ``.npz``** with ``X_train``, ``y_train``, ``X_test``, ``y_test`` (``X`` as
  ``[N, T]`` or ``[N, C, T]``), or ``X`` and ``y`` only (then split); an optional
  ``class_names`` array names the classes in label order.

A lone file is split into train and test by a seeded stratified split
(``numpy.random.default_rng(seed)``, ``test_fraction`` of each class to test).

Normalisation
-------------
Values are mapped into [0, 1] **per channel** with the *train* split's minimum and
maximum over all series and time steps, ``x' = (x - min_c) / (max_c - min_c)``
(a constant channel maps to 0), so the models' sigmoid/Gaussian reconstruction applies
as for images; test values outside the train range are clipped to [0, 1].  The
constants are kept in ``SeriesDataset.minimum`` / ``.maximum``.

Labels become class indices ``0..K-1`` in sorted order of the distinct labels of both
splits; ``class_names`` holds the original labels as strings.

Regression targets
------------------
A regression set (a ``.ts`` file with ``@targetLabel true``, as aeon's CardanoSentiment and
Covid3Month; a table or ``.npz`` whose labels are numbers, not all integers) is not read
as classes (one class per distinct real value).  Its target is a continuous factor
``target``, discretised by the ``--factor-bins`` rule of ``untwine score``
(:func:`untwine._checks.discretize_factors`: ``factor_bins`` (default 10) equal-width bins
between the minimum and maximum of both splits' targets); empty bins are left out,
``class_names`` holds each bin's range, ``regression`` is True, and loading warns once.
A lone regression file is split stratified by these bins.

Evaluation
----------
``untwine evaluate`` on a run trained on a split draws its test rows from the *other*
split only (``SeriesSplit.evaluation_rows``, ``"held-out"`` in ``metrics.json``), never
from the training series.

``SeriesDataset.ground_truth("train")`` wraps a split as a
:class:`~untwine.data.base.GroundTruthDataset` with one factor, ``label`` (not a full
grid), so the training loop (``untwine.train(model, dataset_object, ...)``) can learn
on it.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from untwine.data.base import HELD_OUT, EvaluationRows, GroundTruthDataset
from untwine.data.series_read import read_any, read_csv, read_ts, read_ts_header, ts_problem  # noqa: F401 (re-exported)
from untwine.data.series_targets import _strata, real_targets, stratified_split, target_classes  # noqa: F401 (re-exported)
from untwine.errors import UntwineError, UntwineWarning

_SUFFIXES = (".ts", ".csv", ".tsv", ".txt")
#: bins of a discretised regression target (``load_series(..., factor_bins=N)`` changes it)
TARGET_BINS = 10


@dataclass
class SeriesDataset:
    """A labelled series data set with its train/test split, values in [0, 1] (see module docstring)."""

    name: str
    X_train: np.ndarray  #: float32 [N, C, T]
    y_train: np.ndarray  #: int64 [N]
    X_test: np.ndarray  #: float32 [M, C, T]
    y_test: np.ndarray  #: int64 [M]
    class_names: tuple[str, ...]
    minimum: np.ndarray  #: per-channel train minimum [C] (before scaling)
    maximum: np.ndarray  #: per-channel train maximum [C]
    #: where the test split comes from (said in evaluation notes)
    split_source: str = "the data set's own test split"
    #: True when the target was real-valued and discretised into bins (see the module docstring)
    regression: bool = False

    @property
    def observation_shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.X_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def ground_truth(self, split: str = "train") -> "SeriesSplit":
        """One split as a :class:`GroundTruthDataset` with the single factor ``label``
        (``target`` for a discretised regression target); its evaluation draws test rows from
        the other split (:meth:`SeriesSplit.evaluation_rows`)."""
        if split not in ("train", "test"):
            raise UntwineError(f"split must be 'train' or 'test', got {split!r}")
        factor = "target" if self.regression else "label"
        parts = {
            s: SeriesSplit(f"{self.name}_{s}", x, y, self.num_classes, factor=factor)
            for s, x, y in (("train", self.X_train, self.y_train), ("test", self.X_test, self.y_test))
        }
        parts["train"].held_out, parts["test"].held_out = parts["test"], parts["train"]
        parts["train"].split_source = parts["test"].split_source = self.split_source
        return parts[split]

    def __repr__(self) -> str:
        return (f"<SeriesDataset {self.name}: train {tuple(self.X_train.shape)}, test {tuple(self.X_test.shape)}, "
                f"{self.num_classes} classes>")


class SeriesSplit(GroundTruthDataset):
    """Rows of one split, factor ``label``; not a full grid.

    As for every dataset that is not a full grid, ``observations(factors)`` is the first
    stored series of each requested class, and :meth:`sample` / :meth:`sample_indices`
    draw stored rows uniformly (flat index = row).
    """

    factor_names = ("label",)
    binary = False
    #: the other split of the same data set (set by :meth:`SeriesDataset.ground_truth`)
    held_out: "SeriesSplit | None" = None
    split_source: str = "the data set's own test split"

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray, num_classes: int, *, factor: str = "label") -> None:
        self.name = name
        self.factor_names = (str(factor),)
        self._x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self._y = np.asarray(y, dtype=np.int64)
        self.observation_shape = tuple(int(s) for s in x.shape[1:])
        self.factor_sizes = (int(num_classes),)

    @property
    def is_full_grid(self) -> bool:
        return False

    @property
    def num_samples(self) -> int:
        return int(self._y.shape[0])

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self._y.shape[0], size=n)

    def evaluation_rows(self, num_train: int, num_test: int, rng: np.random.Generator) -> EvaluationRows:
        """Train rows drawn from this split, test rows from the other split only (``"held-out"``);
        a split made without its partner falls back to disjoint rows of its own."""
        if self.held_out is None:
            return self.held_out_rows(num_train, num_test, rng)
        train = self.sample_indices(int(num_train), rng)
        test = self.held_out.sample_indices(int(num_test), rng)
        note = (f"test rows are drawn from {self.held_out.name} ({self.held_out.num_samples} series: "
                f"{self.split_source}), train rows from {self.name} ({self.num_samples} series)")
        return EvaluationRows(train, test, self.held_out, HELD_OUT, note)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.factors_of(self.sample_indices(n, rng))

    def sample(self, n: int, rng: np.random.Generator):
        rows = self.sample_indices(n, rng)
        return self.factors_of(rows), self.observations_at(rows)

    def factors_of(self, index) -> np.ndarray:
        return self._y[self.check_indices(index)][:, None].copy()

    def index_of(self, factors) -> np.ndarray:
        """The first row of each requested class."""
        f = self.check_factors(factors)[:, 0]
        first = {}
        for c in np.unique(f):
            hit = np.nonzero(self._y == c)[0]
            if hit.size == 0:
                raise UntwineError(f"{self.name}: no series of class {int(c)}")
            first[int(c)] = int(hit[0])
        return np.asarray([first[int(c)] for c in f], dtype=np.int64)

    def images_of_rows(self, rows) -> torch.Tensor:
        return self._x[torch.as_tensor(np.asarray(rows, dtype=np.int64))]

    def observations_at(self, indices) -> torch.Tensor:
        return self.images_of_rows(self.check_indices(indices))

    def observations(self, factors) -> torch.Tensor:
        return self.observations_at(self.index_of(factors))


# -- bundled UCR/UEA files ----------------------------------------------------------------
def aeon_data_dir() -> Path | None:
    """The folder of aeon's bundled data sets, or None when aeon is not installed (aeon is not imported)."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "datasets" / "data"
        if d.is_dir():
            return d
    return None


def _loadable(folder: Path) -> bool:
    """Whether ``folder`` holds ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` whose headers :func:`read_ts` accepts."""
    files = [folder / f"{folder.name}_{split}.ts" for split in ("TRAIN", "TEST")]
    try:
        return all(f.is_file() and ts_problem(read_ts_header(f)) is None for f in files)
    except UntwineError:
        return False


def bundled_series(data_dir=None) -> list[str]:
    """Names of the sets with ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` under ``data_dir`` (default: aeon's
    bundled data; empty when aeon is not installed) that load: classification sets and regression
    sets (their targets discretised), without the unequal-length, time-stamped or incomplete ones."""
    d = Path(data_dir) if data_dir is not None else aeon_data_dir()
    if d is None or not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and _loadable(p))


def _as_series(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise UntwineError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise UntwineError(f"{name}: expected series [N, T] or [N, C, T], got shape {tuple(arr.shape)}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise UntwineError(f"{name}: missing or non-finite values are not supported")
    return arr


def _label_strings(y, name: str, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise UntwineError(f"{name}: expected {n} labels in a 1-D array, got shape {tuple(arr.shape)}")
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    return np.array([str(v.decode() if isinstance(v, bytes) else v) for v in arr.tolist()])


def _numeric_key(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def _checked_targets(name, y_train, y_test, n_train: int, n_test: int, regression: bool | None):
    """Both splits' targets as float64 ``[n_train + n_test]`` when they are regression targets, else None."""
    parts = []
    for y, split, n in ((y_train, "y_train", n_train), (y_test, "y_test", n_test)):
        arr = np.asarray(y)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise UntwineError(f"{name}: {split}: expected {n} labels in a 1-D array, got shape {tuple(arr.shape)}")
        parts.append(arr)
    numeric = all(p.dtype.kind in "biuf" for p in parts)
    both = np.concatenate(parts if numeric else [p.astype(str) for p in parts])
    try:
        return real_targets(both, regression)
    except UntwineError as exc:
        raise UntwineError(f"{name}: {exc}") from None


def make_series_dataset(name, x_train, y_train, x_test, y_test, class_names=None, *, regression: bool | None = None,
                        factor_bins: int = TARGET_BINS) -> SeriesDataset:
    """Normalise (per-channel train min/max, see module docstring) and index the labels of one split pair;
    regression targets (``regression``: see :func:`real_targets`) become ``factor_bins`` classes
    (:func:`target_classes`), with one warning."""
    xa = _as_series(x_train, f"{name}: X_train")
    xb = _as_series(x_test, f"{name}: X_test")
    if xa.shape[1:] != xb.shape[1:]:
        raise UntwineError(f"{name}: train series have shape {xa.shape[1:]} but test series {xb.shape[1:]}; they must match")
    values = _checked_targets(name, y_train, y_test, xa.shape[0], xb.shape[0], regression)
    if values is not None:
        if class_names is not None:
            raise UntwineError(f"{name}: class_names given, but the targets are real-valued (regression)")
        if int(factor_bins) < 2:
            raise UntwineError(f"{name}: factor_bins must be at least 2, got {factor_bins}")
        classes, names = target_classes(values, factor_bins)
        warnings.warn(
            f"{name}: the target is real-valued ({np.unique(values).shape[0]} distinct values in {values.shape[0]} "
            f"series), a regression set: treated as the continuous factor 'target', discretised into {int(factor_bins)} "
            f"equal-width bins between its minimum and maximum (the --factor-bins rule; {len(names)} bins hold series)",
            UntwineWarning,
            stacklevel=2,
        )
        ya = np.array([names[c] for c in classes[: xa.shape[0]]])
        yb = np.array([names[c] for c in classes[xa.shape[0]:]])
    else:
        ya = _label_strings(y_train, f"{name}: y_train", xa.shape[0])
        yb = _label_strings(y_test, f"{name}: y_test", xb.shape[0])
        names = sorted(set(ya.tolist()) | set(yb.tolist()), key=_numeric_key)
    if class_names is not None:
        given = [str(c) for c in np.asarray(class_names).reshape(-1).tolist()]
        # integer labels 0..K-1 with names given in label order
        if all(s.lstrip("-").isdigit() for s in names) and len(given) >= len(names) and all(0 <= int(s) < len(given) for s in names):
            ya = np.array([given[int(s)] for s in ya])
            yb = np.array([given[int(s)] for s in yb])
            names = list(given)
        else:
            raise UntwineError(f"{name}: class_names needs integer labels 0..{len(given) - 1}, got labels {names[:5]}")
    if len(names) < 2:
        raise UntwineError(f"{name}: a single class ({names[0]!r}); labelled series need at least two")
    index = {s: i for i, s in enumerate(names)}
    lo = xa.min(axis=(0, 2))
    hi = xa.max(axis=(0, 2))
    span = np.where(hi > lo, hi - lo, 1.0)

    def scale(x):
        return np.clip((x - lo[None, :, None]) / span[None, :, None], 0.0, 1.0).astype(np.float32)

    return SeriesDataset(
        name=str(name),
        X_train=scale(xa),
        y_train=np.array([index[s] for s in ya], dtype=np.int64),
        X_test=scale(xb),
        y_test=np.array([index[s] for s in yb], dtype=np.int64),
        class_names=tuple(names),
        minimum=lo,
        maximum=hi,
        regression=values is not None,
    )


def _pair(path: Path) -> tuple[Path, Path] | None:
    stem, suf = path.stem, path.suffix
    for a, b in (("_TRAIN", "_TEST"), ("_train", "_test")):
        if stem.endswith(a):
            other = path.with_name(stem[: -len(a)] + b + suf)
            return (path, other) if other.is_file() else None
        if stem.endswith(b):
            other = path.with_name(stem[: -len(b)] + a + suf)
            return (other, path) if other.is_file() else None
    return None


def _load_npz(path: Path, seed: int, test_fraction: float, bins: int) -> SeriesDataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise UntwineError(f"{path}: cannot read as .npz ({exc})") from None
    name = path.stem
    names = data.get("class_names")
    if all(k in data for k in ("X_train", "y_train", "X_test", "y_test")):
        return make_series_dataset(name, data["X_train"], data["y_train"], data["X_test"], data["y_test"], names,
                                   factor_bins=bins)
    if "X" in data and "y" in data:
        x = _as_series(data["X"], f"{path}: X")
        y = np.asarray(data["y"])
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise UntwineError(f"{path}: y: expected {x.shape[0]} labels in a 1-D array, got shape {tuple(y.shape)}")
        tr, te = stratified_split(_strata(y, None, bins), test_fraction, seed)
        ds = make_series_dataset(name, x[tr], y[tr], x[te], y[te], names, factor_bins=bins)
        return _lone(ds, test_fraction, seed)
    raise UntwineError(f"{path}: expected arrays X_train, y_train, X_test, y_test (or X and y); found {', '.join(sorted(data)) or 'none'}")


def _lone(ds: SeriesDataset, test_fraction: float, seed: int) -> SeriesDataset:
    ds.split_source = f"a seeded stratified split of one file, test fraction {float(test_fraction):.3g}, seed {int(seed)}"
    return ds


def _load_folder(d: Path, bins: int) -> SeriesDataset:
    for suf in _SUFFIXES:
        a, b = d / f"{d.name}_TRAIN{suf}", d / f"{d.name}_TEST{suf}"
        if a.is_file() and b.is_file():
            return _load_pair(d.name, a, b, bins)
    raise UntwineError(f"{d}: no {d.name}_TRAIN / {d.name}_TEST files (.ts, .csv or .tsv) in this folder")


def _load_pair(name: str, a: Path, b: Path, bins: int) -> SeriesDataset:
    xa, ya, ra = read_any(a)
    xb, yb, rb = read_any(b)
    if ra is not None and rb is not None and ra != rb:
        raise UntwineError(f"{name}: one of {a.name} and {b.name} holds regression targets, the other class labels")
    return make_series_dataset(name, xa, ya, xb, yb, regression=ra if ra is not None else rb, factor_bins=bins)


def load_series(name_or_path, *, seed: int = 0, test_fraction: float = 1.0 / 3.0, data_dir=None,
                factor_bins: int = TARGET_BINS) -> SeriesDataset:
    """A labelled series data set by bundled name or from a path (see the module docstring).

    ``seed`` / ``test_fraction`` split lone files; ``data_dir`` overrides where bundled
    names are looked up (default: aeon's bundled data); ``factor_bins`` discretises
    regression targets.
    """
    if isinstance(name_or_path, SeriesDataset):
        return name_or_path
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
        raise UntwineError(f"series data set must be a name or a path, got {name_or_path!r}")
    text = str(name_or_path)
    path = Path(text)
    base = Path(data_dir) if data_dir is not None else aeon_data_dir()
    if not path.exists() and "/" not in text and os.sep not in text and path.suffix.lower() not in (*_SUFFIXES, ".npz"):
        if base is not None:
            names = {n.lower(): n for n in bundled_series(base)}
            key = names.get(text.lower())
            if key is not None:
                return _load_folder(base / key, factor_bins)
            raise UntwineError(f"unknown series data set {text!r}; bundled: {', '.join(sorted(names.values()))} (or give a path)")
        raise UntwineError(
            f"unknown series data set {text!r}: bundled UCR/UEA sets need aeon installed (pip install aeon), "
            "or give a path to a folder, .ts, .csv or .npz file"
        )
    if not path.exists():
        raise UntwineError(f"{path}: no such file or folder")
    if path.is_dir():
        return _load_folder(path, factor_bins)
    suf = path.suffix.lower()
    if suf == ".npz":
        return _load_npz(path, seed, test_fraction, factor_bins)
    if suf in _SUFFIXES:
        pair = _pair(path)
        if pair is not None:
            stem = pair[0].stem
            return _load_pair(stem[: -len("_TRAIN")], *pair, factor_bins)
        x, y, regression = read_any(path)
        tr, te = stratified_split(_strata(y, regression, factor_bins), test_fraction, seed)
        ds = make_series_dataset(path.stem, x[tr], y[tr], x[te], y[te], regression=regression, factor_bins=factor_bins)
        return _lone(ds, test_fraction, seed)
    raise UntwineError(f"{path}: unsupported file type {path.suffix!r}; use a folder, .ts, .csv, .tsv or .npz")
