"""Errors that carry a message meant for the user, not a traceback."""


class TrainkitError(Exception):
    """Base class: the message names the problem and the fix."""


class ConfigError(TrainkitError):
    """A configuration value or command-line argument is invalid."""


class DataError(TrainkitError):
    """A dataset folder or file handed to trainkit is missing or malformed."""
