"""Shared test set-up: quiet TensorFlow's C++ start-up logging before it is imported."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Fixtures wider than a test run before the per-test cache below exists: they get this one,
# never the user's own cache.
os.environ["KERAS_NOTES_CACHE"] = tempfile.mkdtemp(prefix="keras-notes-test-cache-")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _kept_cache_per_test(tmp_path_factory, monkeypatch):
    """Each test starts with an empty kept cache of its own (child processes inherit it),
    so that no test reads what another computed, and none writes to the user's cache."""
    monkeypatch.setenv("KERAS_NOTES_CACHE", str(tmp_path_factory.mktemp("kept_cache")))
