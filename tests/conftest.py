import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


@pytest.fixture(scope="session")
def data_dir():
    """``tests/data``: real samples (``samples/<dataset>``) and official reference arrays (``reference/``),
    carried by the repository so the suite runs on a fresh clone (see ``tests/data/README.md``)."""
    return DATA


@pytest.fixture(scope="session")
def repo_root():
    return ROOT
