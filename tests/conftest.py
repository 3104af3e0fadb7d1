"""Test-wide settings: untwine's cache (reference scores, trained oracles) goes to a fresh
temporary folder, never the user's ``~/.cache/untwine``."""

import os
import tempfile

os.environ.setdefault("UNTWINE_CACHE", tempfile.mkdtemp(prefix="untwine-test-cache-"))
