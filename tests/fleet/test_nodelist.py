"""Slurm node-list expressions, expanded as ``scontrol show hostnames`` does."""

from __future__ import annotations

import pytest

from dlsetup.errors import InputError
from dlsetup.fleet.nodelist import expand_nodelist, expand_tasks_per_node


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("gpu[01-04,07],cpu1", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07", "cpu1"]),
        ("node[8-10]", ["node8", "node9", "node10"]),
        ("node[08-10]", ["node08", "node09", "node10"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("a-[1,3]-b", ["a-1-b", "a-3-b"]),
        ("single", ["single"]),
        (" x[1-2] , y ", ["x1", "x2", "y"]),
    ],
)
def test_expansion_keeps_order_padding_and_combinations(expr: str, hosts: list[str]) -> None:
    assert expand_nodelist(expr) == hosts


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("gpu[01-04", "a '[' without its ']'"),
        ("gpu01-04]", "a ']' without its '['"),
        ("gpu[04-01]", "runs backwards"),
        ("gpu[a-b]", "is not a number"),
        ("gpu[1-2],,cpu", "an empty host name"),
        ("[1-2]", "a range with no name"),
        ("", "it is empty"),
        ("n[1-1000000]", "more than"),
    ],
)
def test_malformed_expression_is_an_input_error_saying_why(expr: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        expand_nodelist(expr)
    assert why in info.value.message
    assert repr(expr) in info.value.message


def test_tasks_per_node_expands_slurms_repeat_counts() -> None:
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    with pytest.raises(InputError, match="SLURM_TASKS_PER_NODE"):
        expand_tasks_per_node("2(x)")
