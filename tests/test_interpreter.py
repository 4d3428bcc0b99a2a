"""The shared ``--python`` check of doctor and smoke."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.errors import MissingToolError
from dlsetup.interpreter import require_interpreter


def test_missing_interpreter_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError) as raised:
        require_interpreter(tmp_path / "python")
    assert raised.value.message == f"no Python interpreter at {tmp_path / 'python'}"


def test_directory_is_not_an_interpreter(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError, match="is not an executable interpreter"):
        require_interpreter(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="the executable bit is POSIX")
def test_smoke_with_a_non_executable_python_is_exit_3_not_a_traceback(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("not a program\n")
    result = CliRunner().invoke(cli, ["smoke", "--python", str(python)])
    assert result.exit_code == 3
    assert f"Error: {python} is not an executable interpreter" in result.output
    assert "Traceback" not in result.output
