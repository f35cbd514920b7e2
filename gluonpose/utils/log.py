"""The one logging set-up of gluonpose (scripts, training runs): console, optionally a file, one format."""
import logging
import os

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
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=bool(log_file))
