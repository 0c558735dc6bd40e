"""The one error type every config problem is raised as."""


class ConfigError(ValueError):
    """A configuration value is missing, malformed or impossible.

    The message always starts with the dotted field path (``endpoint.min_instances``) and says what is allowed.
    """
