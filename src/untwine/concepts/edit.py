"""The edit test: swap one factor's value in activation space and ask linear probes.

Following the control evaluation of Makelov, Lange & Nanda 2024 ("Towards Principled
Evaluations of Sparse Autoencoders for Interpretability and Control"): for every held-out
row and every factor ``a``, a target value ``v' != v_a`` is drawn (uniformly among the
other values, ``numpy.random.default_rng(seed)``), the row is edited by ``edit(x, f, a, v')``
(default: the supervised dictionary's ``x - u_{a,v} + u_{a,v'}``), and linear probes
trained on unedited train rows (:class:`untwine.concepts.probing.LinearProbes`) read the edited row.
Reported per factor (and as the mean over factors):

* ``edit_flip_{a}``: fraction of edited rows whose probe for ``a`` now answers ``v'``;
* ``edit_keep_{a}``: fraction whose probes for every other factor keep their answer on
  the unedited row;
* ``edit_success_{a}``: fraction with both at once.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import as_codes, as_factors, same_rows
from untwine.errors import UntwineError


def edit_test(x_test, factors_test, probes, edit, *, factor_names=None, factor_sizes=None, seed: int = 0) -> dict[str, float]:
    """Flip / keep / success rates of ``edit`` judged by ``probes`` (module docstring).

    ``edit(x, factors, a, new_values) -> edited x`` edits factor ``a`` of every row;
    ``probes`` has ``predict(x) -> [n, K]`` (e.g. :class:`~untwine.concepts.probing.LinearProbes`).
    """
    x = as_codes(x_test, "activations")
    f = as_factors(factors_test, "factors", allow_constant=True)
    same_rows(x, f, "activations", "factors")
    k_total = f.shape[1]
    sizes = list(factor_sizes) if factor_sizes is not None else [int(m) + 1 for m in f.max(0)]
    names = list(factor_names) if factor_names is not None else [str(k) for k in range(k_total)]
    if len(names) != k_total or len(sizes) != k_total:
        raise UntwineError(f"factor_names / factor_sizes need {k_total} entries")
    rng = np.random.default_rng(seed)
    before = probes.predict(x)
    out: dict[str, float] = {}
    flips, keeps, succ = [], [], []
    for a, name in enumerate(names):
        if sizes[a] < 2:
            raise UntwineError(f"factor {name} has a single value; it cannot be edited")
        new = (f[:, a] + rng.integers(1, sizes[a], size=f.shape[0])) % sizes[a]
        after = probes.predict(edit(x, f, a, new))
        flip = after[:, a] == new
        others = [b for b in range(k_total) if b != a]
        keep = (after[:, others] == before[:, others]).all(axis=1) if others else np.ones(len(flip), bool)
        out[f"edit_flip_{name}"] = float(flip.mean())
        out[f"edit_keep_{name}"] = float(keep.mean())
        out[f"edit_success_{name}"] = float((flip & keep).mean())
        flips.append(flip.mean())
        keeps.append(keep.mean())
        succ.append((flip & keep).mean())
    out["edit_flip_mean"] = float(np.mean(flips))
    out["edit_keep_mean"] = float(np.mean(keeps))
    out["edit_success_mean"] = float(np.mean(succ))
    return out


__all__ = ["edit_test"]
