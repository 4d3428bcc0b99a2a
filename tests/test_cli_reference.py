"""docs/cli.md is the commands' own --help output; this keeps the two from drifting apart."""

from __future__ import annotations

from tests.support.clidoc import render
from tests.support.proc import REPO


def test_cli_reference_matches_the_help_pages() -> None:
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/cli.md is out of date: run `python -m tests.support.clidoc > docs/cli.md`"
    )
