"""The one exception a user can cause (a bad path, a bad option, a missing weights file)."""

__all__ = ["FlowstyleError", "Cancelled"]


class FlowstyleError(RuntimeError):
    """A problem the user can fix; its message is one line: what, where, what to do."""


class Cancelled(Exception):
    """The run was cancelled (SIGINT / the add-on's Cancel); complete frames stay on disk."""
