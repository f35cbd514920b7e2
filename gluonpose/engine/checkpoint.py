"""Epoch checkpoints: parameters, trainer (optimizer) states and a json of everything else.

Files in ``work_dir``: ``epoch_0007.params``, ``epoch_0007.states``, ``epoch_0007.json`` and
``latest.json`` (a copy of the newest epoch's json). Every file is written atomically (temp file +
``os.replace``, usual file mode), the json last, so a crash mid-save leaves the previous checkpoint
intact and ``latest.json`` never points at a half-written file; temp files of a killed save are
removed by the next save.

Retention (:func:`apply_retention`, after every save): the ``keep`` newest complete checkpoints
keep parameters and states; an older epoch divisible by ``keep_every`` keeps its parameters as
``snapshot_epoch_NNNN.params`` (never used by ``--resume``); everything else of older epochs is
removed, the record first (so a half-removed epoch is no longer a checkpoint), then the states,
then the parameters; files a killed removal left behind are removed by the next one. The best
validation AP's parameters stay as ``best.params`` (:func:`save_best`, a hard link: no copy),
named with its epoch and AP in ``best.json`` and under ``"best"`` in ``latest.json``.

:func:`resume_checkpoint` loads the newest checkpoint that loads: a truncated or corrupt
``.params`` / ``.states`` is named in a warning and the next older epoch is tried.
"""
import glob
import json
import logging
import os
import re

from ..errors import CheckpointError, MissingFileError
from ..utils.io import (atomic_save_parameters, atomic_write, atomic_write_json,
                        remove_stale_temp_files)

LOG = logging.getLogger(__name__)
LATEST = "latest.json"
BEST = "best.json"
BEST_PARAMS = "best.params"
_EPOCH_JSON = re.compile(r"^epoch_(\d+)\.json$")
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.(params|states|json)$")
_MID_JSON = re.compile(r"^midepoch_(\d+)_(\d+)\.json$")
_MID_FILE = re.compile(r"^midepoch_(\d+)_(\d+)\.(params|states|json)$")


def epoch_prefix(work_dir, epoch):
    """Path prefix of the checkpoint of (1-based, completed) ``epoch``."""
    return os.path.join(work_dir, "epoch_%04d" % epoch)


def save_checkpoint(work_dir, epoch, net, trainer, meta):
    """Save after completing ``epoch`` (1-based). ``meta`` must be json-serialisable
    (config, seed, metrics ...). Returns the json path."""
    return _write_checkpoint(work_dir, epoch_prefix(work_dir, epoch), net, trainer,
                             dict(meta, epoch=epoch))


def _write_checkpoint(work_dir, prefix, net, trainer, record):
    """Parameters, trainer states (when ``trainer``), then ``record`` (with the file names and
    the kept best) as ``prefix.json`` and ``latest.json``, each atomically. Returns the json
    path."""
    os.makedirs(work_dir, exist_ok=True)
    remove_stale_temp_files(work_dir)
    atomic_save_parameters(net, prefix + ".params")
    if trainer is not None:
        atomic_write(prefix + ".states", trainer.save_states)
    record = dict(record, params=os.path.basename(prefix + ".params"),
                  states=os.path.basename(prefix + ".states") if trainer is not None else None)
    best = read_best(work_dir)
    if best is not None:
        record["best"] = best
    atomic_write_json(record, prefix + ".json", indent=1)
    atomic_write_json(record, os.path.join(work_dir, LATEST), indent=1)
    return prefix + ".json"


def midepoch_prefix(work_dir, epoch, step):
    """Path prefix of the mid-epoch checkpoint after ``step`` steps of (1-based) ``epoch``."""
    return os.path.join(work_dir, "midepoch_%04d_%06d" % (epoch, step))


def save_midepoch_checkpoint(work_dir, epoch, loop_state, net, trainer, meta):
    """Save in the middle of (1-based) ``epoch``, after ``loop_state["step"]`` of its steps
    (preemption, time limit, timer). The record's ``epoch`` is the number of completed epochs
    (``epoch - 1``) and ``loop_state`` says how to continue; ``latest.json`` names it, so
    ``--resume`` continues mid-epoch. Older mid-epoch checkpoints are removed once it is
    complete. Returns the json path."""
    step = int(loop_state["step"])
    path = _write_checkpoint(work_dir, midepoch_prefix(work_dir, epoch, step), net, trainer,
                             dict(meta, epoch=epoch - 1, step=step, loop_state=loop_state))
    remove_midepoch_checkpoints(work_dir, before=(epoch - 1, step))
    return path


def remove_midepoch_checkpoints(work_dir, before):
    """Remove mid-epoch checkpoints older than ``before`` = (completed epochs, step), each
    record first, so a killed removal leaves no half checkpoint (and parts a killed removal
    left behind go too); an epoch-end save supersedes those of its epoch: ``before=(epoch, 0)``."""
    stems = set()
    for name in os.listdir(work_dir):
        match = _MID_FILE.match(name)
        if match and (int(match.group(1)) - 1, int(match.group(2))) < tuple(before):
            stems.add(os.path.join(work_dir, name.rsplit(".", 1)[0]))
    for stem in sorted(stems):
        for ext in (".json", ".states", ".params"):
            _remove(stem + ext)


def _read_record(path):
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError("corrupt checkpoint record %s: %s" % (path, err)) from None
    if not isinstance(record, dict) or not isinstance(record.get("epoch"), int) \
            or not record.get("params"):
        raise CheckpointError("checkpoint record %s lacks 'epoch' / 'params'" % path)
    return record


def update_checkpoint_metrics(work_dir, epoch, metrics):
    """Store ``metrics`` (e.g. with the validation AP) in the saved record of ``epoch`` (and in
    ``latest.json`` when it is that epoch's)."""
    path = epoch_prefix(work_dir, epoch) + ".json"
    record = dict(_read_record(path), metrics=metrics)
    atomic_write_json(record, path, indent=1)
    latest = os.path.join(work_dir, LATEST)
    try:
        if _read_record(latest)["epoch"] == epoch:
            atomic_write_json(record, latest, indent=1)
    except CheckpointError:
        pass


def find_latest(work_dir):
    """The newest checkpoint's record (dict) or None when ``work_dir`` holds none."""
    path = os.path.join(work_dir, LATEST)
    if not os.path.isfile(path):
        return None
    record = _read_record(path)
    for key in ("params", "states"):
        if record.get(key) and not os.path.isfile(os.path.join(work_dir, record[key])):
            raise CheckpointError("%s names %s, which is missing" % (path, record[key]))
    return record


def list_checkpoints(work_dir):
    """Records of every ``epoch_NNNN.json`` in ``work_dir``, newest epoch first (unreadable records
    are logged and left out)."""
    records = []
    for path in glob.glob(os.path.join(glob.escape(work_dir), "*epoch_*.json")):
        name = os.path.basename(path)
        if not (_EPOCH_JSON.match(name) or _MID_JSON.match(name)):
            continue
        try:
            records.append(_read_record(path))
        except CheckpointError as err:
            LOG.warning("%s", err)
    return sorted(records, key=record_position, reverse=True)


def record_position(record):
    """(completed epochs, steps into the next epoch) of a checkpoint record."""
    return int(record["epoch"]), int(record.get("step") or 0)


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def resume_record(path):
    """``--resume PATH`` (mmpose's form): ``(folder, record)`` of a named checkpoint (an
    ``epoch_N.json`` or ``latest.json``, or an ``epoch_N.params`` / ``.states`` with its json beside
    it), or ``(folder, None)`` for a work dir that holds checkpoints (the caller resumes from the
    newest one that loads, :func:`resume_checkpoint`). User errors name the path."""
    if not os.path.exists(path):
        raise MissingFileError("--resume: checkpoint not found: %s" % path)
    if os.path.isdir(path):
        if not list_checkpoints(path) and not os.path.isfile(os.path.join(path, LATEST)):
            raise CheckpointError("--resume: %s holds no checkpoint (no epoch_N.json)" % path)
        return path, None
    stem, ext = os.path.splitext(path)
    if ext in (".params", ".states"):
        if not os.path.isfile(stem + ".json"):
            raise CheckpointError("--resume: %s has no record %s beside it (epoch and trainer states); "
                                  "name the epoch_N.json of a work dir" % (path, stem + ".json"))
        path = stem + ".json"
    elif ext != ".json":
        raise CheckpointError("--resume: %s is not a checkpoint (epoch_N.json, epoch_N.params or a "
                              "work dir)" % path)
    return os.path.dirname(os.path.abspath(path)), _read_record(path)


def load_checkpoint(work_dir, record, net, trainer, ctx=None):
    """Restore ``net`` parameters and ``trainer`` states from a checkpoint record; returns its epoch.

    Raises:
        CheckpointError: naming the ``.params`` / ``.states`` file that is missing, truncated,
            corrupt or does not fit the network.
    """
    params = os.path.join(work_dir, record["params"])
    if not os.path.isfile(params):
        raise CheckpointError("checkpoint parameters %s are missing" % params)
    try:
        net.load_parameters(params, ctx=ctx)
    except Exception as err:  # MXNetError (truncated / corrupt file), AssertionError (mismatch)
        raise CheckpointError("cannot load checkpoint parameters %s (truncated, corrupt or of "
                              "another network): %s" % (params, _first_line(err))) from None
    if trainer is not None and record.get("states"):
        states = os.path.join(work_dir, record["states"])
        if not os.path.isfile(states):
            raise CheckpointError("checkpoint trainer states %s are missing" % states)
        try:
            trainer.load_states(states)
        except Exception as err:  # UnpicklingError, EOFError, MXNetError ...
            raise CheckpointError("cannot load checkpoint trainer states %s (truncated or "
                                  "corrupt): %s" % (states, _first_line(err))) from None
    return record["epoch"]


def resume_checkpoint(work_dir, net, trainer, ctx=None):
    """Load the newest checkpoint of ``work_dir`` that loads; returns its record, or None when
    ``work_dir`` holds no checkpoint.

    Every ``epoch_NNNN.json`` (and ``latest.json``) is tried from the newest epoch down. A
    checkpoint that does not load is named in a warning and the next older one is tried (the
    files are left in place). Raises :class:`CheckpointError` listing every failure when none
    loads.
    """
    candidates = list_checkpoints(work_dir)
    try:
        latest = find_latest(work_dir)
    except CheckpointError as err:
        LOG.warning("%s; looking for the epoch checkpoints instead", err)
        latest = None
    if latest is not None and record_position(latest) not in {record_position(r) for r in candidates}:
        candidates = sorted(candidates + [latest], key=record_position, reverse=True)
    failures = []
    for record in candidates:
        try:
            load_checkpoint(work_dir, record, net, trainer, ctx=ctx)
        except CheckpointError as err:
            failures.append(str(err))
            LOG.warning("%s; trying an older checkpoint", err)
            continue
        if failures:
            LOG.warning("resuming from epoch %d, the newest checkpoint that loads (%d newer one(s) "
                        "did not)", record["epoch"], len(failures))
        return record
    if failures:
        raise CheckpointError("no checkpoint in %s loads:\n  %s" % (work_dir, "\n  ".join(failures)))
    return None


def read_best(work_dir):
    """The record of ``best.params`` (``{"epoch", "metric", "value", "params"}``) or None."""
    path = os.path.join(work_dir, BEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            best = json.load(f)
    except (OSError, ValueError) as err:
        LOG.warning("unreadable %s (%s): the best checkpoint will be chosen again", path, err)
        return None
    return best if isinstance(best, dict) and "value" in best else None


def save_best(work_dir, epoch, metric, value):
    """Keep ``epoch``'s parameters as ``best.params`` when ``value`` of ``metric`` (higher is
    better) beats the kept one; returns True when it did. A hard link to the epoch's file (no
    copy; the epoch's own file may be removed later), replaced atomically; then ``best.json``,
    then ``latest.json``'s ``"best"`` entry."""
    if value is None or value != value:   # missing or NaN
        return False
    best = read_best(work_dir)
    if best is not None and best.get("metric") == metric and not value > best["value"]:
        return False
    source = epoch_prefix(work_dir, epoch) + ".params"
    target = os.path.join(work_dir, BEST_PARAMS)

    def link(tmp):
        try:
            os.link(source, tmp)
        except OSError:   # a file system without hard links
            import shutil
            shutil.copyfile(source, tmp)
    atomic_write(target, link)
    best = {"epoch": int(epoch), "metric": metric, "value": float(value), "params": BEST_PARAMS}
    atomic_write_json(best, os.path.join(work_dir, BEST), indent=1)
    latest = os.path.join(work_dir, LATEST)
    try:
        record = _read_record(latest)
    except CheckpointError:
        return True
    atomic_write_json(dict(record, best=best), latest, indent=1)
    return True


def snapshot_path(work_dir, epoch):
    """Where :func:`apply_retention` keeps the parameters of a ``keep_every`` epoch."""
    return os.path.join(work_dir, "snapshot_epoch_%04d.params" % epoch)


def _epoch_files(work_dir):
    """{epoch: {"params"|"states"|"json": path}} of the epoch files in ``work_dir``."""
    found = {}
    for name in os.listdir(work_dir):
        match = _EPOCH_FILE.match(name)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = os.path.join(work_dir, name)
    return found


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def apply_retention(work_dir, *, keep=2, keep_every=0):
    """Remove what the retention rules do not keep (module notes); returns the epochs whose
    checkpoint was removed. The ``keep`` newest complete checkpoints (a record whose files exist)
    and the one ``latest.json`` names are never touched. Call it after a save completed."""
    if int(keep) < 1:
        raise ValueError("keep must be >= 1, got %r" % (keep,))
    files = _epoch_files(work_dir)
    complete = [r["epoch"] for r in list_checkpoints(work_dir) if not r.get("step")
                and all(os.path.isfile(os.path.join(work_dir, r[k]))
                        for k in ("params", "states") if r.get(k))]
    kept = set(complete[:int(keep)])
    try:
        latest = find_latest(work_dir)
    except CheckpointError:
        latest = None
    if latest is not None and not latest.get("step"):
        kept.add(latest["epoch"])
    if not kept:
        return []
    newest_kept = max(kept)
    removed = []
    for epoch in sorted(files):
        if epoch in kept or epoch > newest_kept:   # newer files: a save in progress elsewhere
            continue
        parts = files[epoch]
        for kind in ("json", "states"):
            if kind in parts:
                _remove(parts[kind])
        if "params" in parts:
            if keep_every and epoch % int(keep_every) == 0:
                os.replace(parts["params"], snapshot_path(work_dir, epoch))
            else:
                _remove(parts["params"])
        removed.append(epoch)
    return removed
