import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


@pytest.fixture(scope="session")
def shared_dir():
    """Path of ../shared (real samples and official reference arrays); skip with a reason if absent."""
    if not os.path.isdir(SHARED):
        pytest.skip("../shared is absent: the real samples and official reference arrays live there")
    return SHARED


@pytest.fixture(scope="session")
def repo_root():
    return ROOT
