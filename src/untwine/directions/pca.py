"""Old name of :mod:`untwine.directions.ganspace` (renamed in wave 3: the method is GANSpace); kept for one release."""

import sys
import warnings

import untwine.directions.ganspace as _new

warnings.warn("untwine.directions.pca is now untwine.directions.ganspace", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
