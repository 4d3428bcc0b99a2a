"""The ``dlsetup`` command line: a thin Click layer over the library.

Subcommands live in :mod:`dlsetup.commands` and are imported only when invoked, so that
``dlsetup --help`` and ``dlsetup doctor --no-frameworks`` start fast. This module is the one place
where a :class:`dlsetup.errors.DlsetupError` becomes ``Error: ...`` on stderr and an exit code;
under ``--json`` the error is also printed on stdout as a ``dlsetup.error`` envelope, so a script
that parses stdout never gets plain text.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, NoReturn

import click

from dlsetup import __version__
from dlsetup.errors import EXIT_CODE_MEANINGS, DlsetupError, ExitCode, Terminated

#: name -> (module, attribute, one-line help shown by ``dlsetup --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "doctor": (
        "dlsetup.commands.doctor",
        "doctor",
        "Report hardware and software, diagnose mismatches, say how to fix them.",
    ),
    "lock": (
        "dlsetup.commands.envs",
        "lock",
        "Write an environment file and a conda-lock file that fit this machine.",
    ),
    "create": (
        "dlsetup.commands.envs",
        "create",
        "Build a verified environment from a lock (atomically).",
    ),
    "smoke": (
        "dlsetup.commands.smoke",
        "smoke",
        "Train a tiny network with every seed activation and loss on every device.",
    ),
    "fleet": (
        "dlsetup.commands.fleet",
        "fleet",
        "Merge per-node doctor reports into one drift report (see smoke --distributed).",
    ),
}

#: Set to 1 to get the traceback of an internal error (a bug) on stderr.
DEBUG_ENV = "DLSETUP_DEBUG"
ISSUES_URL = "https://github.com/dlsetup/dlsetup/issues"
#: ``ctx.meta`` key: the invoked command's arguments ask for ``--json``.
_JSON_META = "dlsetup.json"


def exit_code_table() -> str:
    """The exit-code table as ``--help`` prints it, from :data:`EXIT_CODE_MEANINGS`."""
    return "\n".join(
        f"  {int(code):<4} {meaning}" for code, meaning in sorted(EXIT_CODE_MEANINGS.items())
    )


EPILOG = f"""\b
Exit codes:
{exit_code_table()}

\b
Under --json, an error is a dlsetup.error document on stdout too.

\b
Start here:
  dlsetup doctor            what this machine has and what is wrong with it
  dlsetup create pytorch    a locked PyTorch environment that fits this machine
  dlsetup smoke             prove the installed frameworks train on every device
"""


def _asks_for_json(args: list[str]) -> bool:
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


class LazyGroup(click.Group):
    """A Click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands from :data:`COMMANDS` without importing them."""
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_JSON_META] = _asks_for_json(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.meta.get(_JSON_META))
        try:
            result = super().invoke(ctx)
            if Terminated.pending:  # raised where Python swallowed it (an import lock's callback)
                raise Terminated
            return result
        except DlsetupError as exc:
            fail(ctx, exc.exit_code, type(exc).__name__, exc.message, exc.fix, as_json=as_json)
        except Terminated:
            fail(ctx, ExitCode.TERMINATED, "Terminated", "Terminated", None, as_json=as_json)
        except KeyboardInterrupt:
            fail(ctx, ExitCode.INTERRUPTED, "Interrupted", "Interrupted", None, as_json=as_json)
        except click.exceptions.Exit:
            if Terminated.pending:
                fail(ctx, ExitCode.TERMINATED, "Terminated", "Terminated", None, as_json=as_json)
            raise
        except click.ClickException as exc:
            if not as_json:
                raise
            fail(
                ctx,
                ExitCode.USAGE,
                "UsageError",
                exc.format_message(),
                _usage_fix(ctx),
                as_json=True,
            )
        except click.exceptions.Abort:
            fail(ctx, ExitCode.INTERRUPTED, "Interrupted", "Interrupted", None, as_json=as_json)
        except Exception as exc:  # a bug: say so plainly, keep the traceback for a report
            stop = _wrapped_stop(exc)
            if stop is not None:  # Python wrapped our Ctrl-C or SIGTERM in another error
                name = "Terminated" if isinstance(stop, Terminated) else "Interrupted"
                code = ExitCode.TERMINATED if name == "Terminated" else ExitCode.INTERRUPTED
                fail(ctx, code, name, name, None, as_json=as_json)
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            fail(
                ctx,
                ExitCode.INTERNAL,
                "InternalError",
                f"internal error (a bug in dlsetup): {type(exc).__name__}: {exc}",
                f"rerun with {DEBUG_ENV}=1 to see the traceback and report it at {ISSUES_URL}",
                as_json=as_json,
            )


def _wrapped_stop(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM behind ``exc``, when Python turned it into another error: raised in
    a class body's ``__set_name__`` (a dataclass field while a module imports), Python 3.11
    reports ``RuntimeError: Error calling __set_name__`` caused by it."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _usage_fix(ctx: click.Context) -> str:
    name = ctx.invoked_subcommand or ""
    return f"see: dlsetup {name} --help".replace("  ", " ")


def fail(
    ctx: click.Context,
    code: ExitCode,
    kind: str,
    message: str,
    fix: str | None,
    *,
    as_json: bool,
) -> NoReturn:
    """Report an error (stderr; and a ``dlsetup.error`` envelope on stdout under ``--json``), exit.

    Args:
        ctx: the group's context.
        code: the exit code.
        kind: the error's class name (``InputError``, ``UsageError``, ``Interrupted``, ...).
        message: what went wrong.
        fix: how to fix it, or ``None``.
        as_json: print the envelope on stdout as well.

    Message and fix are redacted (:func:`dlsetup.envs.credentials.redact`): an error quoting a
    channel URL, or an internal error quoting anything, never shows a password or token.
    """
    from dlsetup.envs.credentials import redact

    message = redact(message)
    fix = redact(fix) if fix is not None else None
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        click.echo(f"{message}.", err=True)
    else:
        report_error(message, fix)
    if as_json:
        from dlsetup.output import dumps, envelope

        data = {
            "command": ctx.invoked_subcommand,
            "error": {
                "type": kind,
                "message": message,
                "fix": fix,
                "exit_code": int(code),
                "meaning": EXIT_CODE_MEANINGS[code],
            },
        }
        click.echo(dumps(envelope("dlsetup.error", data)))
    ctx.exit(int(code))


def report_error(message: str, fix: str | None) -> None:
    """Print ``Error: <what>`` and, on its own line, the fix."""
    click.echo(f"Error: {message}", err=True)
    if fix:
        click.echo(f"Fix: {fix}", err=True)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dlsetup")
def cli() -> None:
    """Set up a deep-learning machine: diagnose it, build a locked PyTorch/TensorFlow
    environment that fits its hardware, and prove that environment trains.
    """


def _unsafe_to_raise(frame: FrameType | None) -> bool:
    """Whether an exception raised at ``frame`` would be lost or would wedge the process.

    Lost: in a ``__del__`` or in the weakref callback of an import's module lock
    (``_get_module_lock.<locals>.cb``), Python prints "Exception ignored" and drops it. Wedged:
    raised inside importlib's own code, it can leave the global import lock held, and every
    thread that imports afterwards (doctor's probe threads) waits forever.
    """
    if frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        return True
    for _ in range(8):
        if frame is None:
            return False
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _resend_sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Where raising now would be lost or would leave the import lock held (_unsafe_to_raise), the
    # signal is delivered again a moment later, outside that code; where a loss cannot be seen,
    # the flag makes the command's end exit 143 instead of reporting success.
    Terminated.pending = True
    if _unsafe_to_raise(frame):
        timer = threading.Timer(0.05, _resend_sigterm)
        timer.daemon = True
        timer.start()
        return
    raise Terminated


def install_sigterm_handler() -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread: Ctrl-C's clean-up runs for it."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)


def main() -> None:
    """Console-script entry point."""
    install_sigterm_handler()
    try:
        cli(prog_name="dlsetup")
    except SystemExit as exc:
        if exc.code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
            _exit_without_finalizing(int(exc.code))
        if "rattler" in sys.modules and (exc.code is None or isinstance(exc.code, int)):
            # rattler's tokio threads report into Python even after their work was given up (a
            # download cancelled because another failed): one that does so while the interpreter
            # finalizes kills it ("Fatal Python error: PyGILState_Release", SIGSEGV; issue 20)
            _exit_without_finalizing(exc.code or 0, after_interrupt=False)
        raise


def _exit_without_finalizing(code: int, *, after_interrupt: bool = True) -> NoReturn:
    """Exit without tearing the interpreter down: after an interrupt, or once rattler was used.

    rattler's worker threads may still be finishing the file they unpack (py-rattler cannot
    cancel it); when Python finalizes under them, or when they fail at the partial build's
    blocker, Rust panics and prints a backtrace note after our "Terminated." line. The output is
    flushed, native writes to fd 2 are sent nowhere from then on, and the clean-up registered
    with :mod:`atexit` (the partial build's blocker) still runs. The same exit, fd 2 left as it
    is (``after_interrupt=False``), ends every command that used rattler: its tokio threads take
    the GIL to report work the command gave up on, and one that does so while the interpreter
    finalizes kills it ("Fatal Python error: PyGILState_Release", or SIGSEGV).
    """
    import atexit

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if after_interrupt:
        # Our last line ("Interrupted."/"Terminated.") is out: what native threads still print
        # on fd 2 while the clean-up waits for them (a Rust panic note) goes nowhere.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
