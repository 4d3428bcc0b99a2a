"""Benchmark ``dlsetup doctor`` against ``python -m torch.utils.collect_env``, side by side.

Runs, interleaved, ``--repeat`` times each (median reported):

* ``dlsetup doctor --json`` (torch and TensorFlow probed in parallel subprocesses) vs
  ``python -m torch.utils.collect_env`` (torch only, no diagnosis): ratio, target <= 0.5 with
  torch, torchvision and TensorFlow installed (issue 25; 0.85 before the native-core probes):
  ``--python PATH`` names that environment (doctor probes it with ``--python``, collect_env runs in
  it). The workers load ``torch._C`` and TensorFlow's ``pywrap_tfe`` where that answers (see
  docs/doctor.md), and torchvision's compiled extension, not ``import torchvision``;
* ``doctor --json --full-import`` (the complete imports, as before the native-core probes), for
  scale, and whether it reports the same framework facts as ``doctor --json``;
* ``dlsetup --help`` and ``dlsetup doctor --no-frameworks --json``: wall time, target <= 0.3 s;
* peak RSS of the doctor process itself (sampled with psutil, its framework workers excluded),
  target <= 80 MB; and of the whole process tree (``wait4``'s ``ru_maxrss``, workers included).

With ``--before REV`` the doctor commands also run from the ``dlsetup`` package of git revision
``REV`` (extracted to a temporary directory and put first on ``PYTHONPATH``), interleaved with the
current tree, so a change is measured before/after under the same load.

Both trees are byte-compiled first (``compileall``), as an installed package is: this checkout's
environment sets ``PYTHONDONTWRITEBYTECODE``, which would otherwise make every run recompile
dlsetup from source (about 40 ms) while torch's own modules load from their installed ``.pyc``.

Usage: ``python benchmarks/bench_doctor.py [--repeat 5] [--before REV] [--python PATH]``. Nothing is
asserted: it prints figures.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

PY = sys.executable
SCRIPT = Path(PY).with_name("dlsetup")
DLSETUP = [str(SCRIPT)] if SCRIPT.exists() else [PY, "-m", "dlsetup"]
REPO = Path(__file__).resolve().parent.parent


def extract(rev: str, dest: Path) -> Path:
    """Write the ``dlsetup`` package of git revision ``rev`` under ``dest``; return ``dest``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "dlsetup"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run(cmd: list[str], pythonpath: str | None = None) -> tuple[float, float, float, int]:
    """Run ``cmd``; return (wall s, own peak RSS MB sampled, tree peak RSS MB, exit code).

    Args:
        cmd: the command line.
        pythonpath: put first on ``PYTHONPATH`` (the ``--before`` tree), or None.
    """
    env = dict(os.environ, NO_COLOR="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            me = psutil.Process(proc.pid)
            while not done.is_set():
                peak = max(peak, me.memory_info().rss)
                time.sleep(0.005)
        except psutil.Error:
            return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, peak / 1e6, usage.ru_maxrss / 1e3, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also time dlsetup of this git revision")
    parser.add_argument("--python", help="the environment to probe (torch, torchvision, TF)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-doctor-") as tmp:
        before = extract(args.before, Path(tmp)) if args.before else None
        for tree in [REPO, before]:
            if tree is not None:
                compileall.compile_dir(str(tree / "dlsetup"), quiet=1)
        measure(args.repeat, before, args.before or "", args.python)


def measure(repeat: int, before: Path | None, rev: str, python: str | None = None) -> None:
    """Run every case ``repeat`` times, interleaved, and print medians and ratios."""
    target = ["--python", python] if python else []
    cases: dict[str, tuple[list[str], str | None]] = {
        "collect_env": ([python or PY, "-m", "torch.utils.collect_env"], None),
        "doctor --json": ([*DLSETUP, "doctor", *target, "--json"], None),
        "doctor --json --full-import": (
            [*DLSETUP, "doctor", *target, "--json", "--full-import"],
            None,
        ),
        "dlsetup --help": ([*DLSETUP, "--help"], None),
        "doctor --no-frameworks --json": ([*DLSETUP, "doctor", "--no-frameworks", "--json"], None),
    }
    if before is not None:
        for name in ["doctor --json", "dlsetup --help", "doctor --no-frameworks --json"]:
            cases[f"{name} [{rev}]"] = (cases[name][0], str(before))
    results: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in cases}
    run(cases["doctor --json"][0])  # warm the file cache for both sides
    run(cases["collect_env"][0])
    for _ in range(repeat):
        for name, (cmd, path) in cases.items():  # interleaved: load changes hit every case alike
            results[name].append(run(cmd, path))

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'command':40} {'median s':>9} {'min s':>7} {'own RSS MB':>11} {'tree RSS MB':>12} exit"
    )
    med: dict[str, float] = {}
    for name, rows in results.items():
        walls = [r[0] for r in rows]
        med[name] = statistics.median(walls)
        print(
            f"{name:40} {med[name]:9.3f} {min(walls):7.3f} {max(r[1] for r in rows):11.1f} "
            f"{max(r[2] for r in rows):12.1f} {rows[-1][3]}"
        )
    ratio = med["doctor --json"] / med["collect_env"]
    print()
    print(f"target environment: {python or PY}")
    print(f"doctor --json / collect_env (median wall): {ratio:.2f}  (target <= 0.5, issue 25)")
    if before is not None:
        old = med[f"doctor --json [{rev}]"] / med["collect_env"]
        print(f"  the same at {rev}: {old:.2f}")
    print(f"dlsetup --help: {med['dlsetup --help']:.3f} s  (target <= 0.3)")
    print(
        f"doctor --no-frameworks --json: {med['doctor --no-frameworks --json']:.3f} s  "
        "(target <= 0.3)"
    )
    own = max(r[1] for r in results["doctor --json"])
    print(f"doctor process peak RSS (own, workers excluded): {own:.1f} MB  (target <= 80)")
    full = med["doctor --json --full-import"] / med["collect_env"]
    print(f"doctor --json --full-import / collect_env: {full:.2f}  (the full imports, for scale)")
    print(f"facts, native cores vs full imports: {compare_facts(target)}")


def compare_facts(target: list[str]) -> str:
    """Whether ``doctor --json`` (native cores) and ``--full-import`` report the same framework
    facts (versions, builds, companions; timings and the module imported left out)."""
    import json

    def facts(*extra: str) -> dict[str, object]:
        out = subprocess.run(
            [*DLSETUP, "doctor", *target, "--json", *extra], capture_output=True, text=True
        ).stdout
        frameworks = json.loads(out)["data"]["frameworks"]
        kept = {}
        for name in ("torch", "tensorflow"):
            probe = dict(frameworks.get(name) or {})
            for key in ("import_seconds", "elapsed_s", "imported", "messages"):
                probe.pop(key, None)
            build = probe.get("torch")
            if isinstance(build, dict):
                for comp in ("torchvision", "torchaudio"):
                    if isinstance(build.get(comp), dict):
                        timing = ("seconds", "elapsed_s")
                        build[comp] = {k: v for k, v in build[comp].items() if k not in timing}
            kept[name] = probe
        return kept

    core, full = facts(), facts("--full-import")
    if core == full:
        return "identical"
    return "DIFFER: " + "; ".join(
        f"{n}: core {core[n]} / full {full[n]}" for n in core if core[n] != full[n]
    )


if __name__ == "__main__":
    main()
