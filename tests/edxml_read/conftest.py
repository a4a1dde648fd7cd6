"""Fixtures for the reader tests: the interop samples by name."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample(interop_dir):
    """``sample("sdk-samples/edoc_new.edxml")`` -> the path of an interop file."""
    def find(relative: str):
        path = interop_dir / relative
        assert path.is_file(), f"missing interop sample {path}"
        return path
    return find
