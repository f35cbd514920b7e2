"""Per-epoch training progress that reads well on a terminal and in a log file.

On a terminal (the stream is a tty) a tqdm bar per epoch, redrawn in place and cleared at the end
of the epoch (the trainer's end-of-epoch log line stays). Anywhere else (output redirected to a
file, a pipe, a job scheduler) a bar would pile up thousands of carriage-return updates on one
line, so it becomes a short log line every ``log_every`` steps and at the last step instead.
"""
import logging
import sys
import time

LOG = logging.getLogger(__name__)


def is_terminal(stream):
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds):
    seconds = int(round(max(seconds, 0)))
    h, rem = divmod(seconds, 3600)
    return "%d:%02d:%02d" % (h, rem // 60, rem % 60) if h else "%d:%02d" % (rem // 60, rem % 60)


class EpochProgress:
    """Progress of one epoch of ``total`` steps.

    Args:
        total: steps in the epoch. desc: ``'epoch 3/10'``.
        enabled: False = nothing at all (other ranks, ``--no-progress``).
        log_every: steps between log lines when ``stream`` is not a terminal.
        stream: where the bar goes (default ``sys.stderr``, tqdm's own default); its ``isatty``
            chooses between the bar and log lines.
        logger: receives the log lines.

    Call :meth:`update` once per step with the step's numbers, then :meth:`close`.
    """

    def __init__(self, total, desc, enabled=True, log_every=20, stream=None, logger=LOG):
        self.total = int(total)
        self.desc = desc
        self.log_every = max(int(log_every), 1)
        self.logger = logger
        self.done = 0
        self.tic = time.perf_counter()
        stream = sys.stderr if stream is None else stream
        self.mode = "off" if not enabled else ("bar" if is_terminal(stream) else "log")
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, desc=desc, leave=False, dynamic_ncols=True,
                            file=stream)

    def update(self, **values):
        """One step done; ``values`` (name -> already formatted text) are shown with it."""
        self.done += 1
        if self.mode == "bar":
            self.bar.set_postfix(values, refresh=False)
            self.bar.update(1)
        elif self.mode == "log" and (self.done % self.log_every == 0 or self.done == self.total):
            elapsed = time.perf_counter() - self.tic
            eta = elapsed / self.done * (self.total - self.done)
            self.logger.info("%s [%d/%d] %s, %s elapsed, eta %s", self.desc, self.done, self.total,
                             " ".join("%s %s" % kv for kv in values.items()), _duration(elapsed),
                             _duration(eta))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
