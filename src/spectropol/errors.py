"""The one exception type for problems a user can cause and fix."""

import os


class SpectropolError(Exception):
    """Bad input or configuration: the message names the file and what is wrong, on one line."""


def fail(path, problem: str) -> "SpectropolError":
    """Build the error for ``path``: ``'<path>: <problem>'`` with newlines folded away. A link
    (the workflow reaches the input MS through one) is named by its target, the user's file."""
    if path and os.path.islink(path):
        path = os.path.realpath(path)
    text = f"{path}: {problem}" if path else problem
    return SpectropolError(" ".join(str(text).split()))
