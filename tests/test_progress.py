"""Training progress: a tqdm bar on a terminal, short log lines every few steps anywhere else."""
import io
import logging

from gluonpose.utils.progress import EpochProgress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _run(stream, total=23, log_every=5):
    records = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test_progress.%d" % id(stream))
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(_Keep())
    bar = EpochProgress(total, "epoch 2/9", log_every=log_every, stream=stream, logger=logger)
    for i in range(total):
        bar.update(loss="%.3g" % (1.0 / (i + 1)), lr="1e-3")
    bar.close()
    return bar.mode, records


def test_redirected_output_gets_periodic_short_lines():
    stream = io.StringIO()                       # a file or a pipe: not a terminal
    mode, lines = _run(stream)
    assert mode == "log" and stream.getvalue() == ""
    # every 5th step and the last one, each a short line with the step count and the values
    assert [line.split("]")[0] for line in lines] == ["epoch 2/9 [%d/23" % n for n in (5, 10, 15, 20, 23)]
    assert lines[-1].startswith("epoch 2/9 [23/23] loss 0.0435 lr 1e-3, ")
    assert "eta 0:00" in lines[-1] and all(len(line) < 120 for line in lines)


def test_terminal_gets_a_bar_that_is_cleared_at_the_end():
    stream = _Terminal()
    mode, lines = _run(stream)
    out = stream.getvalue()
    assert mode == "bar" and lines == []
    assert out.startswith("\repoch 2/9:") and "/23 [" in out   # redrawn in place with \r
    assert out.split("\r")[-2].strip() == ""              # and wiped at the end (leave=False)


def test_disabled_progress_says_nothing():
    stream = _Terminal()
    bar = EpochProgress(10, "epoch 1/1", enabled=False, stream=stream)
    for _ in range(10):
        bar.update(loss="1")
    bar.close()
    assert bar.mode == "off" and stream.getvalue() == ""
