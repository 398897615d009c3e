"""The project's exception types. The CLI turns them into one clear line and a non-zero exit."""


class VidLLMError(Exception):
    """Base class of every error the package raises on bad input."""


class ConfigError(VidLLMError, ValueError):
    """A config file or override is invalid (the message names the file and the key)."""


class DataError(VidLLMError, ValueError):
    """A data file is missing or malformed (the message names the file, record and field)."""


class CheckpointError(VidLLMError, ValueError):
    """A checkpoint cannot be loaded safely or does not match the model."""
