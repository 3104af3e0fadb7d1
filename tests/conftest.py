"""Test-wide settings: untwine's cache (reference scores, trained oracles) goes to a fresh
temporary folder, never the user's ``~/.cache/untwine``."""

import os
import tempfile

os.environ.setdefault("UNTWINE_CACHE", tempfile.mkdtemp(prefix="untwine-test-cache-"))

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks on a shared 2-core machine: one torch thread (restored after the module).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
