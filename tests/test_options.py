"""The shared Click parameter types: non-finite, negative and empty values are usage errors."""

from __future__ import annotations

import math
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from dlsetup.commands.options import (
    FINITE_NON_NEGATIVE,
    FINITE_POSITIVE,
    INTERPRETER,
    PERCENTAGE,
    SEED,
    check_devices,
    seconds,
)

MISSING_PYTHON = "/nonexistent/env/bin/python"


def _command() -> click.Command:
    @click.command()
    @click.option("--positive", type=FINITE_POSITIVE)
    @click.option("--bound", type=FINITE_NON_NEGATIVE)
    @click.option("--seconds", "secs", type=seconds(1.0))
    @click.option("--percent", type=PERCENTAGE)
    @click.option("--python", type=INTERPRETER)
    @click.option("--seed", type=SEED)
    @click.option("--device", multiple=True, callback=check_devices)
    def command(**kwargs: object) -> None:
        click.echo(repr(sorted((k, v) for k, v in kwargs.items() if v not in (None, ()))))

    return command


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--positive", "nan"], "'nan' is not a finite number"),
        (["--positive", "inf"], "'inf' is not a finite number"),
        (["--positive", "-inf"], "'-inf' is not a finite number"),
        (["--positive", "0"], "'0' is out of range; give a positive number"),
        (["--positive", "-1"], "'-1' is out of range"),
        (["--positive", "soon"], "'soon' is not a number"),
        (["--bound", "nan"], "not a finite number"),
        (["--bound", "-0.5"], "give a number >= 0"),
        (["--seconds", "0.5"], "give a number >= 1"),
        (["--seconds", "1e999"], "not a finite number"),
        (["--percent", "nan"], "not a finite percentage"),
        (["--percent", "inf%"], "not a finite percentage"),
        (["--percent", "-5%"], "not a finite percentage"),
        (["--percent", "9" * 400 + "%"], "not a finite percentage"),
        (["--python", ""], "'' is empty"),
        (["--python", "  "], "is empty"),
        (["--seed", "-1"], "-1 is not in the range 0<=x<=4294967295"),
        (["--seed", str(2**32)], "is not in the range"),
        (["--device", "cpu", "--device", "nonsense"], "'nonsense' is not a device; valid forms"),
        (["--device", "cuda:x"], "'cuda:x' is not a device"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_value(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(_command(), args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output


def test_good_values_convert() -> None:
    result = CliRunner().invoke(
        _command(),
        [
            *("--positive", "0.5", "--bound", "0", "--seconds", "1", "--percent", "25%"),
            *("--python", "py", "--seed", str(2**32 - 1), "--device", " GPU:1 ", "--device", "mps"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr(
        sorted(
            {
                "positive": 0.5,
                "bound": 0.0,
                "secs": 1.0,
                "percent": 0.25,
                "python": "py",
                "seed": 2**32 - 1,
                "device": ("GPU:1", "mps"),
            }.items()
        )
    )


def test_the_types_never_return_a_non_finite_number() -> None:
    for value in ("1e308", "0.001", "300"):
        assert math.isfinite(FINITE_POSITIVE.convert(value, None, None))
    assert PERCENTAGE.convert("300", None, None) == 3.0


# The commands' own options. ``--python`` names no interpreter, so old code that let a bad value
# through ends with exit 3 (no interpreter) instead of the usage error.
@pytest.mark.parametrize(
    "args",
    [
        ["smoke", "--timeout", "nan"],
        ["smoke", "--timeout", "inf"],
        ["smoke", "--timeout", "-1"],
        ["smoke", "--max-disagreement", "nan"],
        ["smoke", "--max-disagreement", "inf"],
        ["smoke", "--max-regression", "nan"],
        ["smoke", "--max-regression", "9" * 400 + "%"],
        ["smoke", "--seed", "-1"],
        ["smoke", "--device", "cpu", "--device", "nonsense"],
        ["doctor", "--timeout", "nan"],
        ["doctor", "--timeout", "inf"],
    ],
)
def test_smoke_and_doctor_refuse_non_finite_and_out_of_range_values(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--python", MISSING_PYTHON])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{args[1]}'" in result.output


@pytest.mark.parametrize("command", ["smoke", "doctor"])
def test_an_empty_python_is_a_usage_error_not_this_interpreter(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--python", ""])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--python': '' is empty" in result.output


def test_a_bad_device_is_named_with_the_valid_forms() -> None:
    result = CliRunner().invoke(
        cli, ["smoke", "--device", "cpu", "--device", "nonsense", "--python", MISSING_PYTHON]
    )
    assert result.exit_code == 2
    assert "'nonsense' is not a device; valid forms: cpu, cuda, cuda:N" in result.output


def test_the_options_module_is_small_and_importable_without_the_commands(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys, dlsetup.commands.options; print(sorted(m for m in sys.modules if m.startswith('dlsetup')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "dlsetup.commands.smoke" not in out and "dlsetup.commands.doctor" not in out
