"""Generate docs/cli.md from the CLI's own ``--help`` pages, so the reference cannot drift.

Regenerate after changing an option or a help text::

    python -m tests.support.clidoc > docs/cli.md

``tests/test_cli_reference.py`` fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import click
from click.testing import CliRunner

from dlsetup.cli import COMMANDS, cli

HEADER = """\
# CLI reference

Generated from `--help` by `python -m tests.support.clidoc > docs/cli.md`; a test fails when this
file and the commands' help drift apart.
"""


def help_text(*args: str) -> str:
    """The help page of ``dlsetup ARGS --help`` at a fixed width of 100 columns."""
    result = CliRunner().invoke(
        cli, [*args, "--help"], prog_name="dlsetup", terminal_width=100, env={"COLUMNS": "100"}
    )
    if result.exit_code != 0:
        raise RuntimeError(f"dlsetup {' '.join(args)} --help failed: {result.output}")
    return result.output.rstrip() + "\n"


def render() -> str:
    """The whole reference page."""
    parts = [HEADER, "## dlsetup\n", "```\n" + help_text() + "```\n"]
    for name in COMMANDS:
        parts.append(f"## dlsetup {name}\n")
        parts.append("```\n" + help_text(name) + "```\n")
        command = cli.get_command(click.Context(cli), name)
        if isinstance(command, click.Group):  # a group's subcommands have pages of their own
            for sub in command.list_commands(click.Context(command)):
                parts.append(f"## dlsetup {name} {sub}\n")
                parts.append("```\n" + help_text(name, sub) + "```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
