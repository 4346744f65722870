"""Exceptions raised by memjax. Every user-facing failure is one of these, with a message that
names the input at fault and how to fix it."""


class MemjaxError(Exception):
    """Base class of memjax's errors."""


class DataError(MemjaxError):
    """A dataset file or folder is missing, corrupt, truncated or of the wrong format."""


class ConfigError(MemjaxError, ValueError):
    """A configuration value is invalid; raised before any compilation."""


class FeatureError(ConfigError):
    """A unique feature is malformed or does not fit in the image."""
