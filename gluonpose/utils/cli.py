"""What the scripts share: run a command and turn expected failures into one 'error:' line, exit 2."""
import logging
import sys

#: Failures a user can fix (bad config, data, file, weights): reported in one line, never a traceback.
#: ConfigError and DatasetError are ValueErrors; FileNotFoundError is an OSError.
USER_ERRORS = (ValueError, OSError, ImportError)


def run_cli(run, args, log_level=logging.INFO, errors=USER_ERRORS):
    """Call ``run(args)`` with logging set up; return 0, or 2 after printing ``error: ...`` for
    ``errors``."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(args)
    except errors as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    return 0
