"""The errors a user can fix. Every script turns these (and only these) into one ``error: ...`` line and
exit code 2; anything else is a bug and keeps its traceback.

Each message names the file, record, key or value at fault. The classes keep ``ValueError`` /
``FileNotFoundError`` as second bases so callers that caught those before still do.
"""


class UserError(Exception):
    """Base of every error caused by the user's input (config, data, weights, devices, files)."""


class ConfigError(UserError, ValueError):
    """Unknown key, bad value or override, unreadable or malformed config file."""


class DatasetError(UserError, ValueError):
    """Bad dataset input (annotation or detection file, image, record); the message names the file and record."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or weights file that is truncated, corrupt or does not fit the network."""


class ContextError(UserError, ValueError):
    """A device list (``--gpus``) that this machine or this MXNet build cannot provide."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the user named does not exist."""


class MissingDependencyError(UserError, ImportError):
    """An optional package the user's command needs is not installed (the message says which extra)."""


class ConfigTypeError(ConfigError, TypeError):
    """A config section passes an argument its target does not take (still a TypeError, as before)."""


class LaunchError(ConfigError, RuntimeError):
    """A distributed kvstore asked for outside a launched job (still a RuntimeError, as before)."""


class OutputError(UserError, OSError):
    """An output the user named cannot be written (bad extension, unwritable folder); still an OSError."""


class DiskFullError(OutputError):
    """An output could not be written because its file system is full (ENOSPC, EDQUOT); the
    message names the path and what was being written."""
