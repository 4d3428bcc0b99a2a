"""Slurm host-list expressions: ``gpu[01-04,07],cpu1`` and ``SLURM_TASKS_PER_NODE``'s ``2(x3),1``.

The grammar is Slurm's (``scontrol show hostnames``): a comma-separated list of host expressions;
each expression is text with zero or more bracketed ranges, ``[01-04,07]``; several brackets in one
expression give every combination (``r[1-2]n[1-2]`` is r1n1, r1n2, r2n1, r2n2); a range keeps the
zero padding of its lower bound (``[08-10]`` is 08, 09, 10). Order and duplicates are kept as
written, as Slurm keeps them.
"""

from __future__ import annotations

import re

from dlsetup.errors import InputError

#: More hosts than this from one expression is surely a typo (``[1-1000000]``), not a cluster.
MAX_HOSTS = 100_000

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
_TASKS = re.compile(r"(\d+)(?:\(x(\d+)\))?")


def _split_top_level(text: str) -> list[str]:
    """Split at the commas outside brackets; refuse unbalanced brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
            if depth > 1:
                raise _malformed(text, "a '[' inside brackets")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise _malformed(text, "a ']' without its '['")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise _malformed(text, "a '[' without its ']'")
    parts.append(text[start:])
    return parts


def _malformed(text: str, why: str) -> InputError:
    return InputError(
        f"malformed Slurm node list {text!r}: {why}",
        fix="write it as Slurm does, e.g. 'gpu[01-04,07],cpu1' (scontrol show hostnames "
        "expands it)",
    )


def _expand_range(text: str, body: str) -> list[str]:
    out: list[str] = []
    for item in body.split(","):
        m = _RANGE.fullmatch(item.strip())
        if m is None:
            raise _malformed(text, f"{item!r} is not a number or a range like 01-04")
        low_text, high_text = m.group(1), m.group(2)
        low = int(low_text)
        high = low if high_text is None else int(high_text)
        if high < low:
            raise _malformed(text, f"the range {item!r} runs backwards")
        if high - low >= MAX_HOSTS:
            raise _malformed(text, f"the range {item!r} has more than {MAX_HOSTS} hosts")
        width = len(low_text)
        out.extend(str(n).zfill(width) for n in range(low, high + 1))
    return out


def _expand_one(text: str, expr: str) -> list[str]:
    names = [""]
    pos = 0
    while pos < len(expr):
        open_at = expr.find("[", pos)
        if open_at < 0:
            names = [n + expr[pos:] for n in names]
            break
        close_at = expr.index("]", open_at)  # balanced: checked by _split_top_level
        prefix = expr[pos:open_at]
        choices = _expand_range(text, expr[open_at + 1 : close_at])
        names = [n + prefix + c for n in names for c in choices]
        if len(names) > MAX_HOSTS:
            raise _malformed(text, f"it names more than {MAX_HOSTS} hosts")
        pos = close_at + 1
    return names


def expand_nodelist(text: str) -> list[str]:
    """Expand a Slurm node list into host names, in order.

    Args:
        text: for example ``gpu[01-04,07],cpu1``.

    Returns:
        ``['gpu01', 'gpu02', 'gpu03', 'gpu04', 'gpu07', 'cpu1']``.

    Raises:
        InputError: the expression is malformed (unbalanced brackets, a bad range, an empty name).
    """
    if not text.strip():
        raise _malformed(text, "it is empty")
    hosts: list[str] = []
    for raw in _split_top_level(text.strip()):
        expr = raw.strip()
        if not expr or expr.startswith("["):
            raise _malformed(text, "an empty host name" if not expr else "a range with no name")
        hosts.extend(_expand_one(text, expr))
    return hosts


def expand_tasks_per_node(text: str) -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE`` (``2(x3),1``) into one task count per node (``[2, 2, 2, 1]``).

    Raises:
        InputError: the value is malformed.
    """
    counts: list[int] = []
    for item in text.split(","):
        m = _TASKS.fullmatch(item.strip())
        if m is None:
            raise InputError(
                f"malformed SLURM_TASKS_PER_NODE {text!r}: {item!r}",
                fix="Slurm writes it as '2(x3),1'; unset it or fix the job script",
            )
        counts.extend([int(m.group(1))] * int(m.group(2) or 1))
    return counts
