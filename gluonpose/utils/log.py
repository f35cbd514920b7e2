"""The one logging set-up of gluonpose (scripts, training runs): console, optionally a file, one format."""
import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file=None, level=logging.INFO):
    """Log ``level`` and above to the console and, with ``log_file``, to that file too.

    Without ``log_file`` an existing root set-up is kept (``logging.basicConfig`` semantics: a
    host application or test runner stays in charge); with it the root handlers are replaced,
    since a training run owns its log (called again, e.g. by the next run, it moves the file).
    """
    handlers = [logging.StreamHandler()]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(_LogFile(log_file))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=bool(log_file))


class _LogFile(logging.FileHandler):
    """A log file whose full file system stops the program with a DiskFullError naming it
    (logging's default prints a traceback and carries on without the log)."""

    def handleError(self, record):
        err = sys.exc_info()[1]
        from .io import FULL, disk_full_error
        if isinstance(err, OSError) and err.errno in FULL:
            raise disk_full_error(self.baseFilename, "the log") from None
        super().handleError(record)
