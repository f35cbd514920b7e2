"""Epoch checkpoints: parameters, trainer (optimizer) states and a json of everything else.

Files in ``work_dir``: ``epoch_0007.params``, ``epoch_0007.states``, ``epoch_0007.json`` and
``latest.json`` (a copy of the newest epoch's json). Every file is written atomically (temp file +
``os.replace``), the json last, so a crash mid-save leaves the previous checkpoint intact and
``latest.json`` never points at a half-written file. Old epochs are kept.
"""
import json
import os

from ..utils.io import atomic_save_parameters, atomic_write, atomic_write_json

LATEST = "latest.json"


def epoch_prefix(work_dir, epoch):
    """Path prefix of the checkpoint of (1-based, completed) ``epoch``."""
    return os.path.join(work_dir, "epoch_%04d" % epoch)


def save_checkpoint(work_dir, epoch, net, trainer, meta):
    """Save after completing ``epoch`` (1-based). ``meta`` must be json-serialisable
    (config, seed, metrics ...). Returns the json path."""
    os.makedirs(work_dir, exist_ok=True)
    prefix = epoch_prefix(work_dir, epoch)
    atomic_save_parameters(net, prefix + ".params")
    if trainer is not None:
        atomic_write(prefix + ".states", trainer.save_states)
    record = dict(meta, epoch=epoch, params=os.path.basename(prefix + ".params"),
                  states=os.path.basename(prefix + ".states") if trainer is not None else None)
    atomic_write_json(record, prefix + ".json", indent=1)
    atomic_write_json(record, os.path.join(work_dir, LATEST), indent=1)
    return prefix + ".json"


def find_latest(work_dir):
    """The newest checkpoint's record (dict) or None when ``work_dir`` holds none."""
    path = os.path.join(work_dir, LATEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except ValueError as err:
        raise RuntimeError("corrupt checkpoint record %s: %s" % (path, err)) from err
    for key in ("params", "states"):
        if record.get(key) and not os.path.isfile(os.path.join(work_dir, record[key])):
            raise RuntimeError("%s names %s, which is missing" % (path, record[key]))
    return record


def load_checkpoint(work_dir, record, net, trainer, ctx=None):
    """Restore ``net`` parameters and ``trainer`` states from a record of :func:`find_latest`."""
    net.load_parameters(os.path.join(work_dir, record["params"]), ctx=ctx)
    if trainer is not None and record.get("states"):
        trainer.load_states(os.path.join(work_dir, record["states"]))
    return record["epoch"]
