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


@pytest.fixture(scope="session")
def coco(data_dir):
    """The real COCO sample: ground truth ``gt``, its jpg folder ``dir`` and detector boxes ``det``."""
    folder = os.path.join(data_dir, "samples", "coco")
    return {"gt": os.path.join(folder, "test_coco.json"), "dir": folder,
            "det": os.path.join(folder, "test_coco_det_AP_H_56.json")}


@pytest.fixture
def fresh_logging():
    """No root logging handlers during the test: a command run in-process sets logging up on the
    stderr of its own test (handlers of earlier tests hold streams pytest has closed since)."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    yield
    root.handlers = saved
