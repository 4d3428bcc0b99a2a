"""The one place that finds the uv executable (lock's ``pip:`` resolution, create's PyPI phase and
the venv backend all run the same uv)."""

from __future__ import annotations

import os
import shutil

from dlsetup.errors import MissingToolError

#: environment variable naming another uv (a system-wide one, a wrapper)
UV_ENV = "DLSETUP_UV"


def uv_binary() -> str:
    """The uv executable: ``$DLSETUP_UV`` when set, else the ``uv`` package's (a dependency of
    dlsetup), else ``uv`` on PATH.

    Raises:
        MissingToolError: none of them is there.
    """
    given = os.environ.get(UV_ENV)
    if given:
        return given
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise MissingToolError(
            "uv (the resolver and installer dlsetup uses for PyPI packages) was not found: "
            f"neither the uv package, ${UV_ENV} nor a uv on PATH",
            fix="pip install uv (dlsetup depends on it: reinstalling dlsetup brings it back)",
        )
    return found


def run_uv_step(args: list[str], what: str) -> str:
    """Run ``uv ARGS`` (its output returned) as create's PyPI phase runs it: leading its own process group, ended on Ctrl-C or
    SIGTERM, and killed by the kernel when dlsetup dies (Linux), so a SIGKILL of dlsetup leaves
    no uv writing into the partial build. A failure is a SolveError (``what == "resolve"``) or an
    InstallError with uv's last lines."""
    from dlsetup.envs.pypi.install import run_uv
    from dlsetup.errors import InstallError, SolveError

    proc = run_uv([uv_binary(), *args], dict(os.environ))
    if proc.returncode != 0:
        detail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise (SolveError if what == "resolve" else InstallError)(
            f"uv could not {what}: {detail}",
            fix="read uv's message above; --torch-index-url / --index-url name other indexes",
        )
    return proc.stdout
