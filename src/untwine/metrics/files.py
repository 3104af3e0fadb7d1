"""Old name of :mod:`untwine.metrics.score_files` (renamed in wave 3: what `untwine score` reads and writes); kept for one release."""

import sys
import warnings

import untwine.metrics.score_files as _new

warnings.warn("untwine.metrics.files is now untwine.metrics.score_files", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
