"""Old name of :mod:`untwine.arrays` (renamed in wave 3: reading users' arrays; "io" is a stdlib name); kept for one release."""

import sys
import warnings

import untwine.arrays as _new

warnings.warn("untwine.io is now untwine.arrays", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
