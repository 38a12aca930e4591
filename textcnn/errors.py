"""The one base class of textcnn's known failures: the CLI ends each in one line and exit status 1.

Each module raises its own subclass (ConfigError, DataError, ModelDirError, ...) next to the code
that detects it; callers that want every known failure catch TextcnnError.
"""


class TextcnnError(Exception):
    """A failure textcnn detected and can explain in one line (bad config, data, model directory,
    storage, cluster); anything else is a bug and keeps its traceback."""
