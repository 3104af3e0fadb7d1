import numpy as np
import pytest

from untwine._checks import as_codes, as_factors, check_pair, discretize_factors
from untwine.errors import UntwineError


def test_codes_reject_nan_with_location():
    x = np.zeros((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(UntwineError, match="row 2, column 1"):
        as_codes(x)


def test_factors_reject_constant_and_non_integer():
    f = np.stack([np.arange(6) % 3, np.zeros(6)], axis=1)
    with pytest.raises(UntwineError, match="factor 1 takes a single value"):
        as_factors(f)
    with pytest.raises(UntwineError, match="--factor-bins"):
        as_factors(np.linspace(0, 1, 10)[:, None])


def test_row_mismatch():
    with pytest.raises(UntwineError, match="10 rows but factors has 9"):
        check_pair(np.zeros((10, 2)), np.arange(9) % 2)


def test_discretize_equal_width_and_keeps_discrete_classes():
    x = np.stack([np.linspace(0, 1, 100), np.repeat([2, 5, 9, 11], 25)], axis=1)
    d = discretize_factors(x, 10)
    assert d[:, 0].min() == 0 and d[:, 0].max() == 9
    assert np.all(np.bincount(d[:, 0]) == 10)
    assert list(np.unique(d[:, 1])) == [0, 1, 2, 3]
