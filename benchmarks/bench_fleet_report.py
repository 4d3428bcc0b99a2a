"""Benchmark ``dlsetup fleet report`` over 64 synthetic node documents with three kinds of drift.

The documents (``tests/fleet/documents.py``: 8-GPU nodes, valid against the doctor schema) carry
an older driver on gpu07 and gpu42, another torch wheel on gpu13, and MIG on for one GPU of gpu60
(with an error finding). Measured, ``--repeat`` times each (median and worst reported):

* the library call (read 64 files, merge) in this process;
* the whole command, ``dlsetup fleet report DIR --json``, in a fresh process (interpreter start
  and imports included).

Each run's report must name every drifted node and nothing else. Target: the whole command under
0.5 s. Exit 1 when a drifted node is not named or the target is missed.

Usage: ``python benchmarks/bench_fleet_report.py [--repeat 5] [--nodes 64]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlsetup.fleet.report import fleet_report
from tests.fleet.documents import fleet_with_three_drifts, write_nodes

TARGET_S = 0.5


def _named(facts: list[dict[str, object]]) -> dict[str, set[str]]:
    return {
        str(f["fact"]): {str(d["node"]) for d in f["differing"]}  # type: ignore[attr-defined]
        for f in facts
        if f["drifted"]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=64)
    args = parser.parse_args()
    docs, drift = fleet_with_three_drifts(args.nodes)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_nodes(directory, docs)
        size = sum(p.stat().st_size for p in directory.iterdir())
        lib, cmd = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = fleet_report([directory])
            lib.append(time.perf_counter() - t0)
            named = {f.fact: {d.node for d in f.differing} for f in report.facts if f.drifted}
            ok &= named == drift
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "dlsetup", "fleet", "report", str(directory), "--json"],
                capture_output=True,
                text=True,
                check=False,
            )
            cmd.append(time.perf_counter() - t0)
            ok &= out.returncode == 1 and _named(json.loads(out.stdout)["data"]["facts"]) == drift
    print(
        f"{args.nodes} node documents, {size / 2**20:.2f} MiB; drift: "
        + "; ".join(f"{k}: {','.join(sorted(v))}" for k, v in sorted(drift.items()))
    )
    print(
        f"library (read + merge): median {statistics.median(lib) * 1000:.1f} ms, "
        f"worst {max(lib) * 1000:.1f} ms"
    )
    print(
        f"whole command (fresh process): median {statistics.median(cmd) * 1000:.0f} ms, "
        f"worst {max(cmd) * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms)"
    )
    print(f"every drifted node named, nothing else: {'yes' if ok else 'NO'}")
    return 0 if ok and statistics.median(cmd) < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
