"""Old name of :mod:`untwine.data.dataset_files` (renamed in wave 3: the loaders of real datasets' files); kept for one release."""

import sys
import warnings

import untwine.data.dataset_files as _new

warnings.warn("untwine.data.files is now untwine.data.dataset_files", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
