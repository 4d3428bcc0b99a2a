"""The human report's findings: fix commands printed whole, text never read as rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from dlsetup.checks import evaluate
from dlsetup.checks.context import DoctorFacts
from dlsetup.commands.doctor import TABLE_MIN_WIDTH, render_findings
from dlsetup.doctor import DoctorReport
from tests.doctor.test_checks import FIRES, facts, frameworks, tensorflow, torch

TORCH_INSTALL = (
    "/env/bin/python -m pip install 'torch==2.14.*' --index-url "
    "https://download.pytorch.org/whl/cu126"
)
TF_SWAP = (
    "/env/bin/python -m pip uninstall -y tensorflow tensorflow-cpu && "
    "/env/bin/python -m pip install 'tensorflow[and-cuda]==2.17.*'"
)


def rendered(f: DoctorFacts, width: int) -> list[str]:
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, no_color=True, color_system=None, highlight=False, emoji=False
    )
    render_findings(console, DoctorReport(f, evaluate(f), 0.5))
    return buf.getvalue().splitlines()


def cpu_builds() -> DoctorFacts:
    return facts(
        frameworks=frameworks(
            torch_probe=torch("2.13.0+cpu", cuda=None), tf_probe=tensorflow(cuda=None)
        )
    )


def test_narrow_terminal_lists_findings_and_keeps_each_command_on_one_line() -> None:
    lines = rendered(cpu_builds(), width=60)
    assert not any("┃" in line or "│" in line for line in lines)  # blocks, not a table
    assert "ERROR  torch.cpu_build_on_gpu_machine" in lines
    assert f"   {TORCH_INSTALL}" in lines  # 98 characters on a 60-column console, unbroken
    assert f"   {TF_SWAP}" in lines
    assert "1. for torch.cpu_build_on_gpu_machine:" in lines


def test_wide_terminal_table_refers_to_the_commands_printed_below_it() -> None:
    lines = rendered(cpu_builds(), width=160)
    assert rendered(cpu_builds(), width=TABLE_MIN_WIDTH)[1].startswith("┏")  # a table from here
    table = "\n".join(line for line in lines if line.startswith(("│", "┃")))
    assert "command 1 below" in table
    assert "command 2 below" in table
    assert "download.pytorch.org" not in table  # the URL is never folded inside a cell
    assert f"   {TORCH_INSTALL}" in lines
    assert f"   {TF_SWAP}" in lines


def test_brackets_in_finding_text_are_printed_not_read_as_markup() -> None:
    text = "\n".join(rendered(cpu_builds(), width=120))
    assert "'tensorflow[and-cuda]==2.17.*'" in text


def test_finding_without_a_command_has_no_commands_section() -> None:
    lines = rendered(FIRES["memory.low_ram"](), width=120)
    assert any("memory.low_ram" in line for line in lines)
    assert not any(line.startswith("Commands to run") for line in lines)
