"""A diagnosis: what is wrong (or worth knowing), how bad, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]

#: Severity order, lowest first.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One result of a check.

    Attributes:
        id: a stable identifier, ``area.problem`` (``driver.too_old_for_build``); documented in
            docs/doctor.md and never reused for another meaning.
        severity: ``info`` (worth knowing), ``warning`` (works, degraded or risky), ``error``
            (a framework cannot use the hardware, or will fail).
        title: one line.
        message: what was seen and why it matters, in plain words, naming the values.
        fix: a command to run or a concrete action; empty only for pure information.
        details: the facts behind the finding (JSON-serialisable).
        command: the one shell command line of the fix (or the one that shows the cause),
            copy-pasteable as is; empty when the fix is an action rather than a command. The
            report prints it on a line of its own, unwrapped.
    """

    id: str
    severity: Severity
    title: str
    message: str
    fix: str
    details: dict[str, Any] = field(default_factory=dict)
    command: str = ""
