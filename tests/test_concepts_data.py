"""The ``concepts`` text dataset: a full factor grid of templated sentences."""

from __future__ import annotations

import re

import numpy as np
import pytest

import untwine.data as D
from untwine.cli import main
from untwine.data.concepts import (
    ADJECTIVES,
    OBJECTS,
    SUBJECTS,
    ConceptSentences,
    verb_group,
)
from untwine.errors import UntwineError


@pytest.fixture(scope="module")
def grid():
    ds = D.load("concepts")
    f = ds.all_factors()
    return ds, f, ds.observations(f)


def test_registry_and_grid(grid):
    ds, f, s = grid
    assert isinstance(ds, ConceptSentences) and "concepts" in D.list_datasets()
    assert ds.factor_sizes == (10, 2, 3, 2, 3, 6) and ds.num_samples == 2160 == len(s)
    assert ds.observation_shape == () and ds.binary is False and ds.modality == "text"
    assert len(set(s.tolist())) == len(s)  # every grid point is a distinct sentence
    assert np.array_equal(ds.index_of(f), np.arange(2160))
    rows = ds.sample_factors(50, np.random.default_rng(0))
    assert rows.shape == (50, 6) and (rows < np.array(ds.factor_sizes)).all()


def test_pure_function_of_rows_and_seed(grid):
    _ds, f, s = grid
    rows = f[[5, 17, 5, 900]]
    again = D.load("concepts").observations(rows)
    assert again.tolist() == [s[5], s[17], s[5], s[900]]
    other = ConceptSentences(seed=1).observations(f)
    assert (other != s).mean() > 0.5  # another seed, another rendering


def _words(sentence):
    return re.findall(r"[a-z]+", sentence.lower())


def test_each_factor_is_expressed(grid):
    _ds, f, s = grid
    for (subj, num, tense, neg, sent, topic), text in zip(f.tolist(), s.tolist()):
        w = _words(text)
        assert SUBJECTS[subj][num] in w
        assert ("not" in w) == bool(neg)
        assert any(a in w for a in ADJECTIVES[sent])
        assert any(o in w for o in OBJECTS[topic])
        if tense == 2:
            assert "will" in w
        elif tense == 0:
            assert {"was", "were", "did", "seemed", "looked"} & set(w)
        else:
            assert not {"will", "was", "were", "did"} & set(w)


def test_factors_are_not_single_tokens(grid):
    ds, f, s = grid
    # several templates, determiners, adjectives and object nouns are in use, independently of the factors
    ch = ds.choices(f)
    for j in range(4):
        assert len(np.unique(ch[:, j])) > 1
        for k in range(6):  # each surface choice is spread over every value of every factor
            for v in range(ds.factor_sizes[k]):
                assert len(np.unique(ch[f[:, k] == v, j])) == ch[:, j].max() + 1
    first_words = {t.split()[0] for t in s.tolist()}
    assert len(first_words) >= 5


def test_verb_agreement():
    assert verb_group("be", 0, 1, False) == "is" and verb_group("be", 1, 0, True) == "were not"
    assert verb_group("seem", 0, 1, True) == "does not seem" and verb_group("seem", 1, 1, False) == "seem"
    assert verb_group("look", 0, 0, False) == "looked" and verb_group("look", 1, 2, True) == "will not look"


def test_bad_input():
    ds = ConceptSentences()
    with pytest.raises(UntwineError, match="out of range"):
        ds.observations(np.array([[10, 0, 0, 0, 0, 0]]))
    with pytest.raises(UntwineError, match="shape"):
        ds.observations(np.zeros((2, 5), dtype=int))
    with pytest.raises(UntwineError, match="seed"):
        ConceptSentences(seed=-1)


def test_datasets_cli(capsys, tmp_path):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "concepts" in out and "2,160" in out
    path = tmp_path / "c.txt"
    assert main(["datasets", "show", "concepts", "--cols", "3", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    text = path.read_text()
    assert "negation (2):" in text and "  negated " in text and text.strip() in out
    # image consumers refuse text with one line
    rc = main(["train", "beta_vae", "--dataset", "concepts", "--steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "untwine lm activations" in err
