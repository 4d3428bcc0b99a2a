"""The target interpreter (``--python``) that doctor probes and smoke trains in."""

from __future__ import annotations

import os
from pathlib import Path

from dlsetup.errors import MissingToolError


def require_interpreter(python: str | os.PathLike[str]) -> None:
    """Check that ``python`` is an existing, executable file before a worker is started in it.

    Raises:
        MissingToolError: nothing is at ``python``, or it is a directory or not executable.
    """
    path = Path(python)
    if not path.exists():
        raise MissingToolError(
            f"no Python interpreter at {python}",
            fix="pass --python the path of an existing interpreter, e.g. ~/miniforge3/envs/dl/bin/python",
        )
    if not os.access(path, os.X_OK) or path.is_dir():
        raise MissingToolError(
            f"{python} is not an executable interpreter",
            fix="pass --python the path of the environment's python executable (bin/python)",
        )


def cannot_run(python: str | os.PathLike[str], exc: OSError) -> MissingToolError:
    """The error for an interpreter the operating system refused to start (``exc`` from Popen)."""
    return MissingToolError(
        f"cannot run the Python interpreter {python}: {exc}",
        fix="pass --python the path of a working interpreter",
    )
