"""A full disk (ENOSPC on a small tmpfs, mounted by the test as root) and an unwritable work dir:
one ``error:`` line naming the path and what was being written, exit 2, no traceback; the
previous checkpoint stays intact and training resumes once space is freed."""
import logging
import os
import subprocess
import sys

import pytest

from gluonpose.errors import DiskFullError, OutputError
from gluonpose.utils.curves import MetricsCSV
from gluonpose.utils.io import atomic_write_json, check_writable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train_mshrnet.py")
TEST = os.path.join(ROOT, "scripts", "test_mshrnet.py")
ENV = dict(os.environ, OMP_NUM_THREADS="1", MXNET_ENGINE_TYPE="NaiveEngine", PYTHONWARNINGS="ignore")


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of small tmpfs mounts (unmounted afterwards)."""
    mounts = []

    def mount(size, *options):
        path = tmp_path / ("disk%d" % len(mounts))
        path.mkdir()
        opts = ",".join(("size=%s" % size,) + options)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                             capture_output=True, text=True)
        assert res.returncode == 0, "mount failed (the suite runs as root): " + res.stderr
        mounts.append(path)
        return path
    yield mount
    for path in reversed(mounts):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder):
    """Fill a file system up to its last byte (unbuffered writes of shrinking size)."""
    fd = os.open(str(folder / "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


def test_writers_name_the_path_and_what(tmpfs):
    disk = tmpfs("1m")
    csv = MetricsCSV(str(disk / "metrics.csv"), ["epoch", "loss"])
    atomic_write_json({"a": 1}, str(disk / "latest.json"))
    _fill(disk)
    with pytest.raises(DiskFullError, match=r"metrics\.csv while writing metrics"):
        for _ in range(1000):
            csv.append({"epoch": 1, "loss": 0.5})
    with pytest.raises(DiskFullError, match=r"results\.json while writing a json record"):
        atomic_write_json({"x": list(range(100000))}, str(disk / "results.json"))
    assert (disk / "latest.json").read_text() == '{"a": 1}'     # untouched
    assert not [n for n in os.listdir(disk) if n.startswith(".tmp-")]   # temp files removed
    from gluonpose.utils.log import _LogFile
    handler = _LogFile(str(disk / "log.txt"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "y" * 100000, None, None)
    with pytest.raises(DiskFullError, match=r"log\.txt while writing the log"):
        handler.emit(record)
        handler.flush()
        handler.emit(record)
    handler.close()


def test_unwritable_work_dir_is_refused_before_any_work(tmpfs, tmp_path, data_dir):
    readonly = tmpfs("1m", "ro")
    with pytest.raises(OutputError, match="train.work_dir .* is not writable"):
        check_writable(str(readonly / "run"), "train.work_dir")
    cfg, over = _config(tmp_path, data_dir)
    res = subprocess.run([sys.executable, TRAIN, "--no-progress", "--config", cfg,
                          "--work-dir", str(readonly / "run")] + over, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert _error_line(res.stderr).startswith("error: train.work_dir %s" % (readonly / "run"))
    assert "Traceback" not in res.stderr
    assert "training samples" not in res.stderr + res.stdout   # refused before the data was read


def _error_line(stderr):
    """The one ``error:`` line of a command's stderr (MXNet may print engine notes after it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def _config(tmp_path, data_dir, epochs=2):
    """test_train's tiny config (2-stage width-8, the COCO sample), one checkpoint kept:
    ``(config path, overrides)``."""
    from test_train import _config as tiny_config
    return tiny_config(tmp_path, data_dir, **{"train.epochs": epochs, "train.keep_checkpoints": 1})


def test_full_disk_during_a_checkpoint_then_resume(tmpfs, tmp_path, data_dir):
    """80 MB: epoch 1's checkpoint (52 MB) fits, epoch 2's does not (the new one is written before
    the old one is removed). The run ends with one error line naming the file and what it held;
    epoch 1 is intact; with the tmpfs grown, --resume finishes like an uninterrupted run."""
    cfg, over = _config(tmp_path, data_dir)
    full = tmp_path / "full"
    subprocess.run([sys.executable, TRAIN, "--no-progress", "--config", cfg, "--work-dir", str(full)]
                   + over, env=ENV, check=True, timeout=300, capture_output=True)
    disk = tmpfs("80m")
    work = disk / "run"
    res = subprocess.run([sys.executable, TRAIN, "--no-progress", "--config", cfg, "--work-dir",
                          str(work)] + over, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    last = _error_line(res.stderr)
    assert last.startswith("error: no space left on the device of %s/epoch_0002." % work), last
    assert "while writing" in last and "Traceback" not in res.stderr
    before = (work / "epoch_0001.params").read_bytes()
    assert not (work / "epoch_0002.json").exists()
    subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)
    res = subprocess.run([sys.executable, TRAIN, "--no-progress", "--config", cfg, "--work-dir",
                          str(work), "--resume"] + over, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    from test_train import _max_diff, _trainable
    assert _max_diff(_trainable(str(full / "epoch_0002.params")),
                     _trainable(str(work / "epoch_0002.params"))) < 1e-6
    assert not (work / "epoch_0001.params").exists()     # keep_checkpoints: 1 removed it after
    assert before   # epoch 1 was intact and loadable: the resume above started from it


def test_evaluation_results_on_a_full_disk(tmpfs, tmp_path, data_dir):
    """gluonpose-test writing its results json onto a full disk: one error line, exit 2."""
    cfg, over = _config(tmp_path, data_dir, epochs=1)
    work = tmp_path / "w"
    subprocess.run([sys.executable, TRAIN, "--no-progress", "--config", cfg, "--work-dir", str(work)]
                   + over, env=ENV, check=True, timeout=300, capture_output=True)
    disk = tmpfs("64k")
    _fill(disk)
    coco = os.path.join(data_dir, "samples", "coco")
    res = subprocess.run([sys.executable, TEST, "--config", cfg, "--weights",
                          str(work / "epoch_0001.params"), "--use-gt-boxes", "--no-progress",
                          "--gt-json", os.path.join(coco, "test_coco.json"), "--img-prefix", coco,
                          "--out", str(disk / "results.json")] + over, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    assert _error_line(res.stderr).startswith(
        "error: no space left on the device of %s while writing" % (disk / "results.json"))
    assert "Traceback" not in res.stderr
