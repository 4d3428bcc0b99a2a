"""The command-line shell: help, version, entry points, usage errors."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from dlsetup import __version__
from dlsetup.cli import COMMANDS, cli
from tests.support.proc import run_cli


def test_help_lists_every_command_and_the_exit_code_table() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name}  " in result.output
    assert "Exit codes:" in result.output
    assert "130  interrupted" in result.output


def test_version_flag_prints_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"dlsetup, version {__version__}"


def test_python_dash_m_dlsetup_runs_the_same_cli() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dlsetup, version {__version__}"


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dlsetup.cli import cli\n"
        "CliRunner().invoke(cli, ['--help'])\n"
        "heavy = {'torch', 'tensorflow', 'rattler', 'conda_lock', 'pynvml', 'numpy', 'rich', 'yaml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


def test_package_version_matches_pyproject() -> None:
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from tests.support.proc import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == __version__
