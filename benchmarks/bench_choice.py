"""What choosing the CUDA line adds to ``dlsetup lock``: at most 20 ms is the target (issue 8).

Run: ``python benchmarks/bench_choice.py`` (from the repository root; a few seconds).

1. Cold, in a fresh interpreter each time (what one ``dlsetup lock`` pays): import
   :mod:`dlsetup.compat.lines`, read and validate ``compat.yaml`` into its records, choose a line
   for a Pascal + Ampere box on a CUDA 13 driver. Median of several processes, in ms. What lock
   has loaded anyway (PyYAML, packaging, its own modules) is imported first and not counted.
   With the knowledge-base cache (:mod:`dlsetup.compat.cache`) warm, as from the second run of an
   installed dlsetup on, and cold (the first run: the YAML is parsed and the cache written).
2. Warm, in this process: one :func:`choose_cuda_line` call once the knowledge base is loaded, for
   a few scenarios (one GPU, eight GPUs, ``both``, a refusal), in microseconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dlsetup.compat.lines import Gpu, choose_cuda_line  # noqa: E402
from dlsetup.errors import NoFittingBuildError  # noqa: E402

TARGET_MS = 20.0
PROCESSES = 7

#: What ``dlsetup lock`` has imported before it would choose a line (environment files are YAML,
#: versions go through packaging, the lock module itself): not counted as the choice's cost.
_ALREADY_LOADED = "import yaml, packaging.version, dlsetup.envs.files.spec, dlsetup.envs.conda.lock"

_COLD = (
    _ALREADY_LOADED
    + """
import time
t0 = time.perf_counter()
from dlsetup.compat.lines import Gpu, choose_cuda_line
t1 = time.perf_counter()
from dlsetup.compat import knowledge_base
knowledge_base()
t2 = time.perf_counter()
choice = choose_cuda_line(
    "pytorch", "linux-64", "13.0",
    [Gpu(0, "NVIDIA GeForce RTX 3090", (8, 6)), Gpu(1, "NVIDIA GeForce GTX 1080", (6, 1))],
)
t3 = time.perf_counter()
assert choice.line == "12.9", choice
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
"""
)


def cold(pycache: str | None, kb_cache: str | None) -> tuple[float, float, float]:
    """Median (import ms, load+validate ms, first choice ms) over fresh interpreters.

    Args:
        pycache: a bytecode cache directory (as an installed dlsetup has its ``.pyc`` files), or
            None to compile every module from source on each import (``PYTHONDONTWRITEBYTECODE``).
        kb_cache: the ``XDG_CACHE_HOME`` holding the knowledge-base cache
            (:mod:`dlsetup.compat.cache`), written by a first run; None for a miss in every
            process (a fresh, empty one each: the YAML is parsed, validated and written).
    """
    env = dict(os.environ)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    command = [sys.executable, "-c", _COLD]
    with tempfile.TemporaryDirectory() as scratch:
        if kb_cache is not None:
            env["XDG_CACHE_HOME"] = kb_cache
        # one run to write the bytecode (and the knowledge-base cache)
        subprocess.run(command, cwd=REPO, env=env, capture_output=True, check=True)
        runs: list[tuple[float, float, float]] = []
        for i in range(PROCESSES):
            if kb_cache is None:
                env["XDG_CACHE_HOME"] = str(Path(scratch) / f"miss-{i}")
            out = subprocess.run(
                command, cwd=REPO, env=env, capture_output=True, text=True, check=True
            ).stdout.split()
            runs.append((float(out[0]), float(out[1]), float(out[2])))
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        statistics.median(r[2] for r in runs),
    )


def warm(label: str, call: object, repeat: int = 2000) -> None:
    """Print the median time of ``call()`` in microseconds."""
    assert callable(call)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(f"  {label:<44} {statistics.median(times) * 1e6:8.1f} us")


def _refused() -> None:
    try:
        choose_cuda_line("pytorch", "linux-64", "11.4", [Gpu(0, "Tesla K80", (3, 7))])
    except NoFittingBuildError:
        return
    raise AssertionError("Kepler was not refused")


def main() -> None:
    with tempfile.TemporaryDirectory() as pycache, tempfile.TemporaryDirectory() as kb:
        cases = (
            ("bytecode cached, knowledge-base cache hit (an installed dlsetup)", pycache, kb),
            ("bytecode cached, knowledge-base cache miss (first run)", pycache, None),
            ("no bytecode cache (PYTHONDONTWRITEBYTECODE), knowledge-base cache hit", None, kb),
        )
        for label, bytecode, kb_cache in cases:
            imp, load, first = cold(bytecode, kb_cache)
            total = imp + load + first
            verdict = "within" if total <= TARGET_MS else "OVER"
            print(f"cold, per dlsetup lock process, {label} (median of {PROCESSES}):")
            print(f"  import dlsetup.compat.lines                  {imp:8.2f} ms")
            print(f"  read + validate compat.yaml                  {load:8.2f} ms")
            print(f"  first choose_cuda_line                       {first:8.2f} ms")
            print(f"  total added to lock                          {total:8.2f} ms", end="")
            print(f" ({verdict} {TARGET_MS:.0f} ms)")
    print("warm, per call:")
    pascal = [Gpu(0, "NVIDIA GeForce GTX 1080", (6, 1))]
    eight = [Gpu(i, "NVIDIA H100", (9, 0)) for i in range(7)] + [Gpu(7, "GTX 1080", (6, 1))]
    warm("pytorch linux-64, 1 GPU", lambda: choose_cuda_line("pytorch", "linux-64", "13.0", pascal))
    warm("pytorch linux-64, 8 GPUs", lambda: choose_cuda_line("pytorch", "linux-64", "13.0", eight))
    warm("both linux-64, 1 GPU", lambda: choose_cuda_line("both", "linux-64", "13.0", pascal))
    warm("pytorch linux-64, Kepler refused", _refused)


if __name__ == "__main__":
    main()
