"""Sub-commands of the ``untwine`` CLI, one module each (see :mod:`untwine.cli`)."""

import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def help_text(doc: str | None) -> str | None:
    """A command module's docstring after its first paragraph, as ``--help`` shows it: the
    reStructuredText markup (````code````, ``:mod:`x```) reduced to the plain names."""
    if not doc or "\n\n" not in doc:
        return None
    body = doc.split("\n\n", 1)[1]
    return _ROLE.sub(r"\1", body).replace("``", "")
