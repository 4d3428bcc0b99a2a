"""The ``dlsetup`` command line: a thin Click layer over the library.

Subcommands live in :mod:`dlsetup.commands` and are imported only when invoked, so that
``dlsetup --help`` and ``dlsetup doctor --no-frameworks`` start fast. This module is the one place
where a :class:`dlsetup.errors.DlsetupError` becomes ``Error: ...`` on stderr and an exit code.
"""

from __future__ import annotations

import importlib
import signal
from typing import Any, NoReturn

import click

from dlsetup import __version__
from dlsetup.errors import DlsetupError, ExitCode, Terminated

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
}

EPILOG = """\b
Exit codes:
  0    success (no error finding, every check passed)
  1    problems found (an error finding, a failed smoke check, a regression)
  2    usage error (bad option or value, malformed file, refusal to overwrite)
  3    a required tool, interpreter or driver is missing
  4    the operation failed (unsatisfiable solve, failed install, integrity)
  130  interrupted

\b
Start here:
  dlsetup doctor            what this machine has and what is wrong with it
  dlsetup create pytorch    a locked PyTorch environment that fits this machine
  dlsetup smoke             prove the installed frameworks train on every device
"""


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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DlsetupError as exc:
            report_error(exc)
            ctx.exit(int(exc.exit_code))
        except Terminated:
            click.echo("Terminated.", err=True)
            ctx.exit(int(ExitCode.TERMINATED))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))


def report_error(exc: DlsetupError) -> None:
    """Print ``Error: <what>`` and, on its own line, the fix."""
    click.echo(f"Error: {exc.message}", err=True)
    if exc.fix:
        click.echo(f"Fix: {exc.fix}", err=True)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dlsetup")
def cli() -> None:
    """Set up a deep-learning machine: diagnose it, build a locked PyTorch/TensorFlow
    environment that fits its hardware, and prove that environment trains.
    """


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise Terminated


def install_sigterm_handler() -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread: Ctrl-C's clean-up runs for it."""
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)


def main() -> None:
    """Console-script entry point."""
    install_sigterm_handler()
    cli(prog_name="dlsetup")
