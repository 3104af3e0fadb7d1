"""Old name of :mod:`untwine.data.dataset_files` (renamed in wave 3: the loaders of real
datasets' files; the generic ``.npz`` is :mod:`untwine.data.generic_npz`, ``open_file`` is
:func:`untwine.data.open_file`); kept for one release."""

import warnings

from untwine.data import open_file  # noqa: F401
from untwine.data.dataset_files import *  # noqa: F401,F403
from untwine.data.dataset_files import DSpritesFile, FileDataset, MPI3DFile, Shapes3DFile  # noqa: F401
from untwine.data.generic_npz import GenericNpz  # noqa: F401

warnings.warn("untwine.data.files is now untwine.data.dataset_files", DeprecationWarning, stacklevel=2)
