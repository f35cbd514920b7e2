"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never a half-written file).

Temp files are named ``.tmp-<pid>-<random>-<name>`` and created with mode ``0666 & ~umask`` (the
usual 0644), so the final file gets the usual mode, not mkstemp's 0600. A write killed before its
``os.replace`` leaves its temp file behind; :func:`remove_stale_temp_files` removes those of
processes that are gone (the checkpoint saver calls it on every save).
"""
import contextlib
import errno
import json
import logging
import os
import secrets

from ..errors import DiskFullError, OutputError

LOG = logging.getLogger(__name__)
TMP_PREFIX = ".tmp-"


def _tmp_path(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    while True:
        tmp = os.path.join(folder, "%s%d-%s-%s" % (TMP_PREFIX, os.getpid(), secrets.token_hex(4),
                                                   os.path.basename(path)))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


#: errno values of a full file system
FULL = (errno.ENOSPC, errno.EDQUOT)
#: what a file holds, by extension (for the message when it cannot be written)
_WHAT = {".params": "parameters", ".states": "trainer states", ".json": "a json record",
         ".csv": "metrics", ".png": "a plot", ".txt": "the log", ".yaml": "the config"}


def describe_output(path):
    """What ``path`` holds, for messages (``'trainer states'``, ``'metrics'`` ...)."""
    return _WHAT.get(os.path.splitext(path)[1].lower(), "a file")


def disk_full_error(path, what=None):
    """The :class:`DiskFullError` for ``path``."""
    return DiskFullError("no space left on the device of %s while writing %s (%s); free space, "
                         "then run again (training: --resume continues from the last complete "
                         "checkpoint, which is intact)" % (path, what or describe_output(path),
                         os.path.dirname(os.path.abspath(path))))


@contextlib.contextmanager
def output_guard(path, what=None):
    """Turn a full file system (ENOSPC / EDQUOT) while writing ``path`` into a
    :class:`DiskFullError` naming it; other errors pass unchanged."""
    try:
        yield
    except OSError as err:
        if err.errno in FULL and not isinstance(err, DiskFullError):
            raise disk_full_error(path, what) from None
        raise


def atomic_write(path, write_fn, what=None):
    """Call ``write_fn(tmp_path)`` and move the result onto ``path``; clean up on failure. A full
    file system raises :class:`DiskFullError` naming ``path`` and ``what`` it holds (default:
    from its extension); ``path`` itself is untouched."""
    with output_guard(path, what):
        tmp = _tmp_path(path)
        try:
            write_fn(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def check_writable(folder, what):
    """Create ``folder`` if needed and write + remove a probe file in it; :class:`OutputError`
    naming ``what`` (e.g. ``'train.work_dir'``) when that fails (before any work is done)."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = _tmp_path(os.path.join(folder, "write-probe"))
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as err:
        if err.errno in FULL:
            raise disk_full_error(folder, "a probe file")
        raise OutputError("%s %s is not writable: %s" % (what, folder, err.strerror or err))


def atomic_save_parameters(net, path):
    """``net.save_parameters(path)`` atomically."""
    atomic_write(path, net.save_parameters)


def atomic_write_json(obj, path, **kwargs):
    """Write ``obj`` as json atomically (``json.dumps``: the C encoder when ``indent`` is None, which
    ``json.dump`` never uses; the same text)."""
    def write(tmp):
        text = json.dumps(obj, **kwargs)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as err:  # EPERM: alive, owned by someone else
        return err.errno == errno.EPERM
    return True


def remove_stale_temp_files(folder):
    """Remove the temp files of :func:`atomic_write` in ``folder`` whose writer process is gone
    (left by a killed write; older nameless ones too). Returns the removed names."""
    removed = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for name in names:
        if not name.startswith(TMP_PREFIX):
            continue
        pid = name[len(TMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(folder, name))
            removed.append(name)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
    if removed:
        LOG.info("removed %d temporary file(s) left by an interrupted write in %s: %s",
                 len(removed), folder, ", ".join(sorted(removed)))
    return removed
