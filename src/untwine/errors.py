"""The one exception type untwine raises for bad input.

Every :class:`UntwineError` carries a single-line, human-readable message that
names the problem (which argument, which file, which factor).  The command-line
interface prints it as ``error: <message>`` and exits with status 2 instead of
showing a traceback.
"""

from __future__ import annotations


class UntwineError(ValueError):
    """Bad input or an impossible request, described in one line."""


class UntwineWarning(UserWarning):
    """Something the user should know that does not stop the work (a damaged checkpoint
    skipped, a score that is undefined on these data), in one line.  The command line
    prints it as ``warning: <message>``."""
