"""Learning-rate schedule by epoch (multi-step) with an optional linear warm-up, as a pure function.

``lr_at(epoch, iteration, iters_per_epoch)`` is evaluated before every step and set on the trainer, so a
resumed run gets exactly the same rates as an uninterrupted one.
"""
import bisect
from ..errors import ConfigError


class MultiStepSchedule:
    """lr = base_lr * factor ** (number of steps <= epoch), linearly warmed up over the first
    ``warmup_epochs`` from ``warmup_factor * base_lr``."""

    def __init__(self, base_lr, steps=(), factor=0.1, warmup_epochs=0, warmup_factor=0.1):
        if list(steps) != sorted(steps):
            raise ConfigError("lr steps must be increasing, got %s" % (list(steps),))
        self.base_lr = float(base_lr)
        self.steps = list(steps)
        self.factor = float(factor)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_factor = float(warmup_factor)

    def lr_at(self, epoch, iteration=0, iters_per_epoch=1):
        """Learning rate for ``iteration`` (0-based) of ``epoch`` (0-based)."""
        progress = epoch + iteration / float(max(iters_per_epoch, 1))
        lr = self.base_lr * self.factor ** bisect.bisect_right(self.steps, epoch)
        if progress < self.warmup_epochs:
            alpha = progress / self.warmup_epochs
            lr *= self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        return lr
