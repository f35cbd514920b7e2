"""What every command shares (``gluonpose-*`` entry points and ``scripts/*.py``): argument parsing with
``section.key=value`` overrides anywhere on the line, and one error path.

A :class:`~gluonpose.errors.UserError` (bad config, data, weights, devices, missing file or package)
becomes one ``error: ...`` line on stderr and exit status 2. Nothing else is caught: any other
exception is a bug and keeps its traceback.
"""
import logging
import sys

from ..errors import UserError
from .log import setup_logging

#: exit status of every command for a user error (argparse uses the same for bad flags)
USER_ERROR_EXIT = 2


def parse_cli_args(parser, argv=None):
    """``parser.parse_intermixed_args``: positional ``key=value`` overrides may come before, between or
    after the flags (plain ``parse_args`` rejects a positional that follows a flag once the
    overrides were matched as empty)."""
    return parser.parse_intermixed_args(argv)


def report_user_error(err, prog=None):
    """Print ``error: <message>`` on stderr (the few messages with several lines, e.g. how to fetch
    missing detector weights, continue below it); returns the exit status 2."""
    text = str(err) or type(err).__name__
    print("%serror: %s" % ("%s: " % prog if prog else "", text), file=sys.stderr)
    return USER_ERROR_EXIT


def run_cli(run, args, log_level=logging.INFO):
    """Call ``run(args)`` with logging set up. Returns 0 (or ``run``'s integer result), or 2 after
    printing ``error: ...`` for a :class:`~gluonpose.errors.UserError` or a full file system.
    Everything else propagates."""
    setup_logging(level=log_level)
    try:
        result = run(args)
    except UserError as err:
        return report_user_error(err)
    except OSError as err:   # a full disk where no writer named its file: still one error line
        from .io import FULL, disk_full_error
        if err.errno not in FULL:
            raise
        return report_user_error(disk_full_error(err.filename or "an output file"))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
