"""Sub-commands of the ``untwine`` CLI, one module each (see :mod:`untwine.cli`)."""
