"""The one exception hierarchy of dlsetup.

Library code raises these; only :mod:`dlsetup.cli` turns them into ``Error: <what> — <fix>``
and an exit code. Library code never calls ``sys.exit``.

Exit codes: :class:`ExitCode` and :data:`EXIT_CODE_MEANINGS` are the one table. ``dlsetup --help``
prints it from there; the README's copy is tested against it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; what each means is in :data:`EXIT_CODE_MEANINGS`."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    MISSING = 3
    FAILED = 4
    INTERNAL = 70
    INTERRUPTED = 130
    TERMINATED = 143


#: What each exit code means, in the words ``--help`` and the README use.
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success (no error finding, every check passed)",
    ExitCode.FINDINGS: "problems found (an error finding, a failed smoke check, a regression)",
    ExitCode.USAGE: "usage error (bad option or value, malformed file, refusal to overwrite)",
    ExitCode.MISSING: "a required tool, interpreter or driver is missing",
    ExitCode.FAILED: "the operation failed (unsatisfiable solve, failed install, integrity)",
    ExitCode.INTERNAL: "internal error: a bug in dlsetup (please report it)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGINT)",
    ExitCode.TERMINATED: "terminated (SIGTERM: kill, timeout, docker stop, CI cancellation)",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. Raised in the main thread by the handler :mod:`dlsetup.cli` installs.

    A subclass of :class:`KeyboardInterrupt`, so every clean-up written for Ctrl-C (ending worker
    process groups, removing a partial build) runs for SIGTERM too; the CLI exits 143 for it.

    Attributes:
        pending: set by the handler with each SIGTERM, so that a raise Python swallowed (in an
            import lock's callback) still ends the command with 143; code that catches the
            raise and decides the command's outcome itself (rank 0 of a distributed smoke whose
            report is written) calls :meth:`handled`.
    """

    pending: bool = False

    @classmethod
    def handled(cls) -> None:
        """The SIGTERM seen so far was dealt with: the command's own outcome stands."""
        cls.pending = False


class DlsetupError(Exception):
    """Base of every error dlsetup reports to the user.

    Args:
        message: what went wrong, naming the file, the value or the package involved.
        fix: a concrete action or command that fixes it, or ``None`` when there is none.
    """

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if self.fix is None else f"{self.message} — {self.fix}"


class InputError(DlsetupError):
    """A value, option or input file is invalid (unknown target, malformed YAML, bad name)."""

    exit_code = ExitCode.USAGE


class ExistsError(InputError):
    """The target (environment, environment file, lock) exists and ``--force`` was not given."""


class MissingToolError(DlsetupError):
    """A required executable, library, interpreter or driver is not present."""

    exit_code = ExitCode.MISSING


class ProbeError(DlsetupError):
    """A probe could not run at all (not: a field it could not read; that is a reasoned value)."""


class SolveError(DlsetupError):
    """A dependency solve failed; the message explains the constraint in plain words."""


class InstallError(DlsetupError):
    """Building an environment failed; the target is left as it was."""


class IntegrityError(DlsetupError):
    """A lock or package failed a hash, channel or format check and was refused."""


class SmokeError(DlsetupError):
    """The smoke runner could not run (not: a check that failed; that is a result)."""


class KnowledgeBaseError(InputError):
    """The compatibility knowledge base (``compat.yaml``) is malformed; the message names the key."""


class NoFittingBuildError(InputError):
    """No build of the framework runs on some GPU of the machine (or on its driver).

    Args:
        message: which GPU (index, name, compute capability) and why nothing runs on it.
        fix: the choices, joined for the ``Error:`` line.
        gpu_index: the GPU that no build serves, or None when the driver is the reason.
        choices: each choice on its own (``--variant cpu``, a pip command for the last release
            that shipped the architecture, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        gpu_index: int | None = None,
        choices: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, fix=fix)
        self.gpu_index = gpu_index
        self.choices = choices
