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


def test_one_device_resolution_for_every_command():
    import torch

    from untwine.device import resolve_device
    from untwine.lm.activations import pick_device
    from untwine.sae.train import resolve_device as sae_resolve
    from untwine.train.run import resolve_device as run_resolve

    assert pick_device is resolve_device and sae_resolve is resolve_device and run_resolve is resolve_device
    assert resolve_device("CPU") == torch.device("cpu") and resolve_device(torch.device("cpu")).type == "cpu"
    assert resolve_device(None) == resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UntwineError, match="device must be auto, cpu, cuda or cuda:N, got 'tpu0'"):
        resolve_device("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UntwineError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_every_registry_has_the_same_errors():
    from untwine.data import DATASETS
    from untwine.directions import METHODS
    from untwine.metrics.registry import METRICS
    from untwine.models import MODELS
    from untwine.models.architectures import ARCHITECTURES
    from untwine.registry import Registry
    from untwine.sae.registry import ARCHITECTURES as SAE_ARCHITECTURES

    for reg in (DATASETS, METHODS, METRICS, MODELS, ARCHITECTURES, SAE_ARCHITECTURES):
        assert isinstance(reg, Registry) and len(reg) > 1
        with pytest.raises(UntwineError, match=f"unknown {reg.kind} 'nope'; known {reg.plural}: " + ", ".join(reg)):
            reg.lookup("nope")
        first = next(iter(reg))
        with pytest.raises(UntwineError, match=f"{reg.kind} '{first}' is registered already"):
            reg.add(first, object())
        assert reg.add(first, reg[first]) is reg[first]  # the same entry again changes nothing
