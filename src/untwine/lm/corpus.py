"""Sentences (and their known factors) to run through a language model.

A corpus is the built-in ``concepts`` grid (:mod:`untwine.data.concepts`), or a file:

* ``.txt``: one sentence per line (blank lines skipped); no factors;
* ``.tsv`` / ``.csv``: a header row naming a ``text`` (or ``sentence``) column and any
  number of integer factor columns, one sentence per row.

``max_rows`` keeps the first ``max_rows`` sentences of a file, or a seeded uniform subset
of the grid (kept in grid order) for ``concepts``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from untwine._checks import check_seed
from untwine.errors import UntwineError
from untwine.files import read_text


@dataclass
class Corpus:
    """Sentences with an optional factor table ``[n, K]`` int64 (``None`` for plain text)."""

    name: str
    sentences: list[str]
    factors: np.ndarray | None = None
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.sentences)

    def fingerprint(self) -> str:
        """SHA-256 of the sentences and factors: identifies the corpus when resuming."""
        h = hashlib.sha256()
        for s in self.sentences:
            h.update(s.encode("utf-8") + b"\n")
        if self.factors is not None:
            h.update(np.ascontiguousarray(self.factors, dtype=np.int64).tobytes())
        return h.hexdigest()


def concepts_corpus(max_rows: int | None = None, seed: int = 0) -> Corpus:
    """The ``concepts`` grid as a corpus (all 2,160 sentences, or a seeded subset of ``max_rows``)."""
    from untwine.data.concepts import ConceptSentences

    ds = ConceptSentences()
    factors = ds.all_factors()
    if max_rows is not None and max_rows < len(factors):
        keep = np.sort(np.random.default_rng(seed).choice(len(factors), size=max_rows, replace=False))
        factors = factors[keep]
    return Corpus(
        "concepts",
        ds.observations(factors).tolist(),
        factors,
        tuple(ds.factor_names),
        tuple(int(s) for s in ds.factor_sizes),
    )


def _read_table(p: Path, text: str, delimiter: str) -> Corpus:
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise UntwineError(f"{p}: the corpus file is empty; give one sentence per row")
    header = [c.strip().lower() for c in rows[0]]
    col = next((header.index(n) for n in ("text", "sentence") if n in header), None)
    if col is None:
        raise UntwineError(f"{p}: needs a header row with a 'text' (or 'sentence') column, got {rows[0]}")
    names = tuple(rows[0][j].strip() for j in range(len(header)) if j != col)
    sentences, factors = [], []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise UntwineError(f"{p}: row {i} has {len(r)} cells but the header has {len(header)}")
        s = r[col].strip()
        if not s:
            raise UntwineError(f"{p}: row {i} has an empty sentence")
        sentences.append(s)
        try:
            factors.append([int(r[j]) for j in range(len(r)) if j != col])
        except ValueError:
            raise UntwineError(f"{p}: row {i} has a factor that is not an integer class index") from None
    if not sentences:
        raise UntwineError(f"{p}: the corpus file has a header but no sentences")
    f = np.asarray(factors, dtype=np.int64).reshape(len(sentences), len(names))
    if (f < 0).any():
        raise UntwineError(f"{p}: factors must be class indices >= 0")
    sizes = tuple(int(v) + 1 for v in f.max(axis=0)) if names else ()
    return Corpus(p.name, sentences, f if names else None, names, sizes)


def read_corpus(corpus, max_rows: int | None = None, seed: int = 0) -> Corpus:
    """``"concepts"`` or a corpus file (module docstring) as a :class:`Corpus`."""
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer))
                                 or max_rows < 1):
        raise UntwineError(f"--max-rows must be a positive integer, got {max_rows!r}")
    check_seed(seed)
    if isinstance(corpus, Corpus):
        c = corpus
    elif str(corpus).strip().lower() == "concepts":
        c = concepts_corpus(max_rows, seed)
    else:
        p = Path(corpus)
        if not p.is_file():
            raise UntwineError(f"corpus {corpus!r} is neither 'concepts' nor an existing file")
        text = read_text(p, what="corpus file")
        ext = p.suffix.lower()
        if ext in (".tsv", ".csv"):
            c = _read_table(p, text, "\t" if ext == ".tsv" else ",")
        else:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if not lines:
                raise UntwineError(f"{p}: the corpus file is empty; give one sentence per line")
            c = Corpus(p.name, lines)
    if max_rows is not None:
        if len(c) > max_rows:
            c = Corpus(c.name, c.sentences[:max_rows], None if c.factors is None else c.factors[:max_rows],
                       c.factor_names, c.factor_sizes)
    return c


__all__ = ["Corpus", "concepts_corpus", "read_corpus"]
