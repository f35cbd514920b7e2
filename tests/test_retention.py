"""Checkpoint retention (gluonpose/engine/checkpoint.py apply_retention / save_best, run by the
CheckpointHook after each save): the N newest complete checkpoints with states, parameter
snapshots every K epochs, the best validation AP's parameters; removal that a kill cannot turn
into a loss."""
import json
import os
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluonpose.engine import checkpoint as ckpt
from gluonpose.engine.hooks import CheckpointHook

APS = [0.1, 0.5, 0.3, 0.7, 0.2, 0.6, 0.65]   # the best is epoch 4


def _loop(net, trainer, epoch, max_epochs=len(APS)):
    return SimpleNamespace(rank=0, epoch=epoch, max_epochs=max_epochs, net=net, trainer=trainer,
                           row={"epoch": epoch + 1})


def _net_and_trainer():
    mx.random.seed(0)
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.1})
    return net, trainer


def _step(net, trainer):
    with autograd.record():
        loss = net(mx.nd.ones((2, 4))).sum()
    loss.backward()
    trainer.step(2)


def _train(work_dir, keep=2, keep_every=3, keep_best=True):
    """7 epochs through the hook, validation AP of each epoch from APS; returns the bytes of
    every epoch's parameters right after its save."""
    net, trainer = _net_and_trainer()
    hook = CheckpointHook(str(work_dir), meta={"toy": 1}, keep=keep, keep_every=keep_every,
                          keep_best=keep_best)
    saved = {}
    for epoch, ap in enumerate(APS):
        _step(net, trainer)
        loop = _loop(net, trainer, epoch)
        hook.after_epoch(loop)
        saved[epoch + 1] = (work_dir / ("epoch_%04d.params" % (epoch + 1))).read_bytes()
        loop.row["AP"] = ap          # what the validation hook does after the checkpoint
        hook.row_updated(loop)
    return saved, net


def test_retention_keeps_newest_snapshots_and_best(tmp_path):
    saved, _ = _train(tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.startswith("epoch_")] == [
        "epoch_0006.json", "epoch_0006.params", "epoch_0006.states",
        "epoch_0007.json", "epoch_0007.params", "epoch_0007.states"]
    # epoch 6 is among the 2 newest (kept whole); epoch 3 is the only older multiple of 3
    assert [n for n in names if n.startswith("snapshot_")] == ["snapshot_epoch_0003.params"]
    assert (tmp_path / "snapshot_epoch_0003.params").read_bytes() == saved[3]
    assert (tmp_path / "best.params").read_bytes() == saved[4]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best == {"epoch": 4, "metric": "AP", "value": 0.7, "params": "best.params"}
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["epoch"] == 7 and latest["best"] == best and latest["metrics"]["AP"] == 0.65
    assert json.loads((tmp_path / "epoch_0007.json").read_text())["best"] == best


def test_resume_after_retention_is_the_newest(tmp_path):
    _, trained = _train(tmp_path)
    net, trainer = _net_and_trainer()
    record = ckpt.resume_checkpoint(str(tmp_path), net, trainer)
    assert record["epoch"] == 7
    for (k, a), (_, b) in zip(sorted(trained.collect_params().items()),
                              sorted(net.collect_params().items())):
        assert np.array_equal(a.data().asnumpy(), b.data().asnumpy()), k
    assert trainer._optimizer.num_update == 7


def test_default_keeps_everything_without_retention(tmp_path):
    _train(tmp_path, keep=None, keep_every=0, keep_best=False)
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".states")]) == len(APS)
    assert not (tmp_path / "best.params").exists()


def test_a_killed_removal_loses_nothing_and_is_finished_later(tmp_path, monkeypatch):
    """The process dies inside the removal (simulated: os.remove raises after the first file):
    the newest checkpoints still load, the half-removed epoch is no longer a checkpoint (its
    record went first), and the next retention removes what was left."""
    net, trainer = _net_and_trainer()
    for epoch in range(4):
        _step(net, trainer)
        ckpt.save_checkpoint(str(tmp_path), epoch + 1, net, trainer, {})
    calls = []
    real_remove = os.remove

    def dying_remove(path):
        calls.append(path)
        if len(calls) > 1:
            raise KeyboardInterrupt("killed")
        real_remove(path)
    monkeypatch.setattr(ckpt.os, "remove", dying_remove)
    with pytest.raises(KeyboardInterrupt):
        ckpt.apply_retention(str(tmp_path), keep=2)
    monkeypatch.setattr(ckpt.os, "remove", real_remove)
    assert calls[0].endswith("epoch_0001.json")
    assert [r["epoch"] for r in ckpt.list_checkpoints(str(tmp_path))] == [4, 3, 2]
    fresh, fresh_trainer = _net_and_trainer()
    assert ckpt.resume_checkpoint(str(tmp_path), fresh, fresh_trainer)["epoch"] == 4
    assert sorted(ckpt.apply_retention(str(tmp_path), keep=2)) == [1, 2]
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("epoch_")) == [
        "epoch_0003.json", "epoch_0003.params", "epoch_0003.states",
        "epoch_0004.json", "epoch_0004.params", "epoch_0004.states"]


def test_best_ignores_worse_and_missing_values(tmp_path):
    net, trainer = _net_and_trainer()
    for epoch in (1, 2, 3):
        ckpt.save_checkpoint(str(tmp_path), epoch, net, trainer, {})
    assert ckpt.save_best(str(tmp_path), 1, "AP", 0.5)
    assert not ckpt.save_best(str(tmp_path), 2, "AP", 0.5)      # not better
    assert not ckpt.save_best(str(tmp_path), 2, "AP", float("nan"))
    assert not ckpt.save_best(str(tmp_path), 2, "AP", None)
    assert ckpt.save_best(str(tmp_path), 3, "AP", 0.51)
    assert ckpt.read_best(str(tmp_path))["epoch"] == 3
    with pytest.raises(ValueError):
        ckpt.apply_retention(str(tmp_path), keep=0)


def test_retention_keys_are_checked_when_the_config_loads():
    from gluonpose.config import load_config
    from gluonpose.errors import ConfigError
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        load_config(None, ["train.keep_checkpoints=0"])
    with pytest.raises(ConfigError, match="keep_every"):
        load_config(None, ["train.keep_every=-1"])
