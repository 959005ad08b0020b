"""Errors a user can cause, each carrying the one line that tells them what to do.

The CLI prints ``str(error)`` and exits with code 2; library users catch
``WeightlabError``. Anything else that escapes is a bug in weightlab.
"""


class WeightlabError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class ConfigError(WeightlabError, ValueError):
    """A configuration value or flag that cannot be used."""


class DataError(WeightlabError):
    """A dataset that cannot be found, read or verified."""


class RunDirError(WeightlabError):
    """A run directory that cannot be written or read."""
