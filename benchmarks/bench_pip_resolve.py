"""A 5-requirement ``pip:`` section: what locking it adds, side by side with ``uv pip compile`` alone.

Run: .venv/bin/python -m benchmarks.bench_pip_resolve [--runs N]

Builds the test conda channel and a local PEP 503 index of tiny real wheels (5 top-level projects,
each with two dependencies of its own, one of which conda provides: 16 wheels), then times, runs
interleaved, medians of N (warm uv cache, shared by both):

* ``uv pip compile`` alone: the same 5 requirements, the same index, ``--python-version``,
  ``--python-platform``, ``--generate-hashes`` (and ``--python`` naming this interpreter, as dlsetup
  does, so neither side pays uv's interpreter search);
* dlsetup's PyPI resolution of the same section (:func:`dlsetup.envs.pypi.resolve.resolve`: stub
  wheels for the conda part, uv, the best wheel per package, each wheel's Requires-Dist);
* what the section adds to a whole ``dlsetup lock`` (one platform): the lock with it minus the
  lock without it.

Target (issue 9): resolving the section takes at most 1.5x ``uv pip compile`` alone (the resolve()
column; exit 1 when it does not). The last column is printed beside it: it also holds writing the 10
extra ``manager: pip`` entries with conda-lock's own writer (``yaml.dump`` with PyYAML's pure-Python
dumper, about 1-2 ms per entry here), a cost of the lock's size, not of resolving.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

REQUIREMENTS = ("alpha>=1", "bravo", "charlie<3", "delta", "echo")
LIMIT = 1.5


def wheels() -> list[object]:
    from tests.support.wheels import Wheel

    out: list[object] = []
    for name in ("alpha", "bravo", "charlie", "delta", "echo"):
        out.append(Wheel(name, "1.0", (f"{name}-core>=1", "numpy>=1")))
        out.append(Wheel(name, "2.0", (f"{name}-core>=2", "numpy>=1")))
        out.append(Wheel(f"{name}-core", "2.1"))
    out.append(Wheel("numpy", "2.3.4", tag="cp312-cp312-manylinux_2_17_x86_64"))
    return out


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from dlsetup.envs.conda.request import LockRequest, lock_target
    from dlsetup.envs.pypi.resolve import PypiRequest, resolve
    from dlsetup.envs.pypi.uv import uv_binary
    from dlsetup.platforms import PLATFORM_INFO
    from tests.envs.channel import build_channel
    from tests.support.wheels import build_index

    with tempfile.TemporaryDirectory(prefix="bench-pip-") as tmp:
        root = Path(tmp)
        channel = build_channel(root / "channel")
        index = build_index(root / "index", wheels())  # type: ignore[arg-type]
        cache = root / "uv-cache"
        (root / "req.in").write_text("\n".join(REQUIREMENTS) + "\n")
        uv_argv = [
            uv_binary(), "pip", "compile", str(root / "req.in"), "--python", sys.executable,
            "--python-version", "3.12.7", "--python-platform",
            PLATFORM_INFO["linux-64"].uv_platform, "--generate-hashes", "--index-url", index,
            "--cache-dir", str(cache), "--no-config", "--quiet", "-o", str(root / "req.txt"),
        ]  # fmt: skip
        request = PypiRequest(
            "linux-64", REQUIREMENTS, "3.12.7", {"numpy": "2.3.4", "pip": "25.2"}, index
        )
        base = (
            "name: bench\nchannels:\n  - conda-forge\ndependencies:\n  - python 3.12.*\n  - numpy\n"
        )
        with_pip = (
            base
            + f"  - pip:\n    - --index-url {index}\n"
            + "".join(f"    - {r}\n" for r in REQUIREMENTS)
        )
        (root / "plain.yml").write_text(base)
        (root / "pip.yml").write_text(with_pip)

        def lock(name: str) -> None:
            opts = LockRequest(name, "cpu", None, ("linux-64",), False, None, (channel,), "rattler")
            lock_target(
                LockRequest(
                    str(root / name), opts.variant, None, opts.platforms, False, None,
                    opts.channels, opts.engine,
                ),
                root / "out",
                force=True,
            )  # fmt: skip

        def uv_alone() -> None:
            subprocess.run(uv_argv, check=True)

        def dlsetup_resolve() -> None:
            solution = resolve(request, cache_dir=cache)
            assert len(solution.packages) == 10, solution

        import os

        os.environ["UV_CACHE_DIR"] = str(cache)
        for warm in (uv_alone, dlsetup_resolve, lambda: lock("plain.yml"), lambda: lock("pip.yml")):
            warm()
        uv_ms, resolve_ms, plain_ms, pip_ms = [], [], [], []
        for _ in range(args.runs):  # interleaved, so load from elsewhere hits all alike
            uv_ms.append(median_ms(uv_alone, 1))
            resolve_ms.append(median_ms(dlsetup_resolve, 1))
            plain_ms.append(median_ms(lambda: lock("plain.yml"), 1))
            pip_ms.append(median_ms(lambda: lock("pip.yml"), 1))
    uv, res = statistics.median(uv_ms), statistics.median(resolve_ms)
    added = statistics.median(p - q for p, q in zip(pip_ms, plain_ms, strict=True))
    print(
        f"5-requirement pip: section, 10 PyPI packages resolved, medians of {args.runs} runs (ms)"
    )
    print(f"{'uv pip compile alone':<36}{'dlsetup resolve()':>20}{'added to dlsetup lock':>24}")
    print(f"{uv:<36.1f}{res:>20.1f}{added:>24.1f}")
    print(f"ratio resolve()/uv: {res / uv:.2f}x   ratio added-to-lock/uv: {added / uv:.2f}x   "
          f"(target <= {LIMIT}x; lock without the section: {statistics.median(plain_ms):.1f} ms)")  # fmt: skip
    return 0 if res <= LIMIT * uv else 1


if __name__ == "__main__":
    raise SystemExit(main())
