"""Test-only faults patched into the REAL torch.distributed of one rank of a distributed smoke run.

Put this directory on ``PYTHONPATH`` and set ``DLSETUP_TEST_DIST_FAULT=KIND@RANK``; Python imports
this module at start-up in every process (torchrun's agents, dlsetup, the rank workers), and in the
process whose ``RANK`` is RANK it patches ``torch.distributed`` the moment the worker imports it.
No production module knows about these faults. KIND:

* ``die``: the rank's first ``all_reduce`` exits the process (exit 17), as a crashed rank does;
* ``hang``: its first ``all_reduce`` never returns (sleeps an hour), as a wedged rank does;
* ``stall``: as ``hang``, meant for rank 0 (the reporter): its own watchdog must end it;
* ``wrong``: its first ``all_reduce`` adds 1 to the result, as a broken link or kernel would;
* ``slow``: from its first ``all_reduce`` on, each 2-D ``torch.matmul`` of at least 128 rows
  sleeps 5 ms more (a straggler).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from typing import Any

ENV = "DLSETUP_TEST_DIST_FAULT"


def _fault() -> str | None:
    kind, _, rank = os.environ.get(ENV, "").partition("@")
    if kind and rank and os.environ.get("RANK") == rank:
        return kind
    return None


def _patch(dist: Any) -> None:
    kind = _fault()
    original = dist.all_reduce
    calls = {"n": 0}

    def all_reduce(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1 and kind == "slow":  # torch is imported by now (its docs are set)
            _slow_matmul(sys.modules["torch"])
        if calls["n"] == 1 and kind == "die":
            sys.stderr.write(f"test fault: rank {os.environ['RANK']} dies\n")
            sys.stderr.flush()
            os._exit(17)
        if calls["n"] == 1 and kind in ("hang", "stall"):
            time.sleep(3600)
        out = original(tensor, *args, **kwargs)
        if calls["n"] == 1 and kind == "wrong":
            tensor.add_(1)
        return out

    dist.all_reduce = all_reduce


def _slow_matmul(torch: Any) -> None:
    matmul = torch.matmul

    def slow_matmul(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        if a.dim() == 2 and a.shape[0] >= 128:
            time.sleep(0.005)
        return matmul(a, b, *args, **kwargs)

    torch.matmul = slow_matmul


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "torch.distributed":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _fault():
    sys.meta_path.insert(0, _Finder())
