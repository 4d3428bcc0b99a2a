"""Click parameter types shared by the commands' options.

Click's ``FloatRange`` lets ``nan`` and ``inf`` through (every comparison with NaN is false), and a
``click.Path`` takes ``''``, which ``Path('')`` reads as the current directory. These types refuse
such values at parse time, so a bad option is a usage error (exit 2) naming the option and the
value, never a wrong result later.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; older releases cannot subscript it
    _FloatType = click.ParamType[float, Any]
    _TextType = click.ParamType[str, Any]
else:
    _FloatType = _TextType = click.ParamType


class FiniteFloat(_FloatType):
    """A finite float, optionally bounded below: ``nan``, ``inf`` and ``-inf`` are refused.

    Args:
        min: the smallest value allowed (``None``: no lower bound).
        min_open: the bound itself is refused too (``min=0, min_open=True``: positive).
    """

    name = "float"

    def __init__(self, min: float | None = None, *, min_open: bool = False) -> None:
        self.min = min
        self.min_open = min_open

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value) and self._in_range(value):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; {self._expected()}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; {self._expected()}", param, ctx)
        if not self._in_range(number):
            self.fail(f"{value!r} is out of range; {self._expected()}", param, ctx)
        return number

    def _in_range(self, number: float) -> bool:
        if self.min is None:
            return True
        return number > self.min if self.min_open else number >= self.min

    def _expected(self) -> str:
        if self.min is None:
            return "give a finite number"
        if self.min == 0:
            return "give a positive number" if self.min_open else "give a number >= 0"
        return f"give a number {'>' if self.min_open else '>='} {self.min:g}"

    def __repr__(self) -> str:
        return f"FiniteFloat(min={self.min!r}, min_open={self.min_open!r})"


#: A finite number > 0 (seconds, bounds).
FINITE_POSITIVE = FiniteFloat(0.0, min_open=True)
#: A finite number >= 0 (a bound where 0 means "no deviation at all").
FINITE_NON_NEGATIVE = FiniteFloat(0.0)


def seconds(minimum: float) -> FiniteFloat:
    """A finite number of seconds, at least ``minimum`` (> 0)."""
    return FiniteFloat(minimum)


class Percentage(_FloatType):
    """A finite, non-negative percentage, ``25%`` or ``25``, converted to a fraction (``0.25``)."""

    name = "percent"
    _PATTERN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%?\s*")

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):  # already converted (a default given as a fraction)
            return value
        m = self._PATTERN.fullmatch(str(value))
        number = float(m.group(1)) / 100.0 if m else math.nan
        if not math.isfinite(number):
            self.fail(
                f"{value!r} is not a finite percentage; give a non-negative percentage such as "
                "25% or 300%",
                param,
                ctx,
            )
        return number


PERCENTAGE = Percentage()


class InterpreterPath(_TextType):
    """The path of a Python interpreter (``--python``): an empty or blank value is refused.

    Whether the file exists and runs is checked later, with exit 3 (a missing tool).
    """

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            self.fail(
                f"{text!r} is empty; give the path of the environment's python executable, "
                "e.g. ~/miniforge3/envs/dl/bin/python, or leave the option out to use this one",
                param,
                ctx,
            )
        return text


INTERPRETER = InterpreterPath()


class FilePath(click.Path):
    """A file to read (``click.Path(dir_okay=False)``), refusing an empty or blank value, which
    ``Path('')`` would read as the current directory."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=pathlib.Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not str(value).strip():
            self.fail(f"{str(value)!r} is empty; give the path of a file", param, ctx)
        return super().convert(value, param, ctx)


#: The range of ``--seed``: what NumPy's ``SeedSequence`` takes (non-negative) and what every
#: framework's seed setter takes (32 bits).
SEED = click.IntRange(0, 2**32 - 1)

#: The spellings of a device that ``--device`` accepts.
DEVICE_FORMS = "cpu, cuda, cuda:N (= gpu:N, GPU:N), mps, CPU:N"
_DEVICE = re.compile(r"(cpu|gpu|cuda|mps)(:\d+)?", re.IGNORECASE)


def check_devices(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Click callback of a repeatable ``--device``: every value must be a device name."""
    for device in value:
        if not _DEVICE.fullmatch(device.strip()):
            raise click.BadParameter(
                f"{device!r} is not a device; valid forms: {DEVICE_FORMS}", ctx, param
            )
    return tuple(d.strip() for d in value)
