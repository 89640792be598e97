"""The one exception type that the CLI turns into a one-line message."""


class GouacheError(Exception):
    """A user-facing error: bad input, a missing file, an incompatible checkpoint."""
