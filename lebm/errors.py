"""Exceptions with short, specific messages. The CLI prints them without a traceback."""


class LebmError(Exception):
    """Base class for errors caused by user input or the environment (not bugs)."""


class ConfigError(LebmError, ValueError):
    """An unknown configuration key, a wrong type or an impossible value."""


class CheckpointError(LebmError):
    """A missing, incomplete or corrupt checkpoint or run folder."""


class DivergenceError(LebmError):
    """Training produced NaN/inf and could not be recovered within the configured retries."""


class DataError(LebmError):
    """A data set is missing, corrupt, or the data options cannot be satisfied."""
