"""Checkpoints: a truncated or corrupt .params/.states is named and --resume falls back to the newest
one that loads; a killed write's temp files are removed by the next save; the usual file mode."""
import json
import logging
import os
import stat

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluonpose.engine.checkpoint import (load_checkpoint, resume_checkpoint, save_checkpoint,
                                         update_checkpoint_metrics)
from gluonpose.errors import CheckpointError


def _net_and_trainer(seed=0):
    mx.random.seed(seed)
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.Normal(1.0))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    return net, trainer


def _step(net, trainer):
    with autograd.record():
        loss = (net(mx.nd.ones((2, 4))) ** 2).sum()
    loss.backward()
    trainer.step(2)


def _weights(net):
    return {k: v.data().asnumpy().copy() for k, v in net._collect_params_with_prefix().items()}


@pytest.fixture()
def two_epochs(tmp_path):
    """work dir with epochs 1 and 2 saved; returns (work_dir, weights after epoch 1, after 2)."""
    net, trainer = _net_and_trainer()
    saved = {}
    for epoch in (1, 2):
        _step(net, trainer)
        save_checkpoint(str(tmp_path), epoch, net, trainer, {"metrics": {"loss": 1.0}})
        saved[epoch] = _weights(net)
    return str(tmp_path), saved


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


@pytest.mark.parametrize("suffix", [".params", ".states"])
def test_corrupt_checkpoint_is_named_and_resume_falls_back(two_epochs, suffix, caplog):
    work, saved = two_epochs
    bad = os.path.join(work, "epoch_0002" + suffix)
    _truncate(bad)
    net, trainer = _net_and_trainer(seed=7)
    record = json.load(open(os.path.join(work, "latest.json")))
    with pytest.raises(CheckpointError, match="epoch_0002\\" + suffix):
        load_checkpoint(work, record, net, trainer)
    with caplog.at_level(logging.WARNING, logger="gluonpose.engine.checkpoint"):
        resumed = resume_checkpoint(work, net, trainer)
    assert resumed["epoch"] == 1
    assert "epoch_0002" + suffix in caplog.text and "resuming from epoch 1" in caplog.text
    for k, v in _weights(net).items():
        np.testing.assert_array_equal(v, saved[1][k])
    # the optimizer state is epoch 1's too: one more step equals the uninterrupted run's step 2
    _step(net, trainer)
    for k, v in _weights(net).items():
        np.testing.assert_allclose(v, saved[2][k], rtol=1e-6)


def test_resume_without_any_loadable_checkpoint(two_epochs, tmp_path):
    work, _ = two_epochs
    _truncate(os.path.join(work, "epoch_0001.params"))
    with open(os.path.join(work, "epoch_0002.states"), "wb") as f:
        f.write(b"garbage")
    with open(os.path.join(work, "latest.json"), "w") as f:
        f.write("{")   # corrupt record too: the epoch records are still found
    net, trainer = _net_and_trainer()
    with pytest.raises(CheckpointError) as err:
        resume_checkpoint(work, net, trainer)
    assert "epoch_0001.params" in str(err.value) and "epoch_0002.states" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resume_checkpoint(str(empty), net, trainer) is None


def test_killed_write_temp_files_are_removed_by_the_next_save(tmp_path):
    net, trainer = _net_and_trainer()
    work = str(tmp_path)
    dead = os.path.join(work, ".tmp-999999999-0a1b2c3d-epoch_0001.params")   # no such process
    old_style = os.path.join(work, ".tmp-k2j4h5g6.states")                     # mkstemp name
    live = os.path.join(work, ".tmp-%d-0a1b2c3d-curves.png" % os.getppid())   # a running writer
    for path in (dead, old_style, live):
        with open(path, "wb") as f:
            f.write(b"partial")
    save_checkpoint(work, 1, net, trainer, {})
    assert not os.path.exists(dead) and not os.path.exists(old_style)
    assert os.path.exists(live)
    assert sorted(n for n in os.listdir(work) if not n.startswith(".")) == \
        ["epoch_0001.json", "epoch_0001.params", "epoch_0001.states", "latest.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoint_files_get_the_usual_mode(tmp_path, umask, mode):
    net, trainer = _net_and_trainer()
    old = os.umask(umask)
    try:
        save_checkpoint(str(tmp_path), 1, net, trainer, {})
        update_checkpoint_metrics(str(tmp_path), 1, {"AP": 0.5})
    finally:
        os.umask(old)
    for name in os.listdir(str(tmp_path)):
        assert stat.S_IMODE(os.stat(os.path.join(str(tmp_path), name)).st_mode) == mode, name
    assert json.load(open(tmp_path / "latest.json"))["metrics"] == {"AP": 0.5}
