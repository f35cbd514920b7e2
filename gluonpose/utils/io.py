"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never a half-written file)."""
import json
import os
import tempfile


def _tmp_path(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    return tmp


def atomic_write(path, write_fn):
    """Call ``write_fn(tmp_path)`` and move the result onto ``path``; clean up on failure."""
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


def atomic_save_parameters(net, path):
    """``net.save_parameters(path)`` atomically."""
    atomic_write(path, net.save_parameters)


def atomic_write_json(obj, path, **kwargs):
    """Write ``obj`` as json atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, **kwargs)
    atomic_write(path, write)
