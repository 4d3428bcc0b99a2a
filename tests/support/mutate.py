"""Hypothesis strategy for mutating a real document: the fuzz tests' one mutation engine.

A mutation picks any key or item of a JSON/YAML document (at any depth) and deletes it,
duplicates it (list items) or replaces it with junk drawn from a strategy.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path below ``node``."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths_of(value, (*prefix, i))
    return found


def mutate(draw: st.DrawFn, document: Any, junk: st.SearchStrategy[Any], most: int = 3) -> Any:
    """A deep copy of ``document`` with 1 to ``most`` mutations drawn with ``draw``."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, most))):
        paths = paths_of(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = draw(junk)
    return doc
