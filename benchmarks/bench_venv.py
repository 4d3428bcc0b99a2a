"""``dlsetup create --from-lock pylock.toml`` against ``uv venv`` + ``uv pip sync`` of the same lock.

Side by side, alternating (a create, then a uv run, as one pair; the pair's ratio is the figure
least moved by other load on the machine), on a warm uv cache (both draw the wheels from the same cache), each into a
fresh directory. dlsetup's create does more than the two uv commands: it checks the lock (every
package a hashed wheel, packaging.pylock), takes the target's lock, builds beside the target and
renames it into place, keeps a copy of the lock and registers a Jupyter kernel; the smoke test is
left out (--no-smoke: it is not installation). Target: at most 1.2x.

The lock: the real CPU torch wheel when one lies on disk (``--wheel``, default
/opt/wheels/torch-2.13.0+cpu-*.whl, ~200 MB unpacked to ~1 GB) plus numpy and ipykernel with their
dependencies from PyPI (resolved once by uv; needs PyPI); ``--tiny`` uses the test suite's local
stand-in index instead (no network; fixed costs only, so the ratio is the worst case).

Run: .venv/bin/python -m benchmarks.bench_venv [--runs 5] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def uv() -> str:
    from dlsetup.envs.pypi.uv import uv_binary

    return uv_binary()


def real_lock(work: Path, wheel: Path) -> Path:
    """A pylock.toml of the on-disk torch wheel + numpy + ipykernel (uv resolves; PyPI)."""
    source = work / "bench.in"
    version = wheel.name.split("-")[1]
    source.write_text(f"torch=={version}\nnumpy\nipykernel\n")
    out = work / "pylock.bench.toml"
    subprocess.run(
        [uv(), "pip", "compile", str(source), "--format", "pylock.toml", "--find-links",
         str(wheel.parent), "--only-binary", ":all:", "--no-header", "--quiet", "-o", str(out)],
        check=True,
    )  # fmt: skip
    return out


def tiny_lock(work: Path) -> Path:
    """A pylock.toml of the test suite's stand-in torch/numpy/ipykernel (no network)."""
    from tests.support.torch_index import build_torch_index

    index = build_torch_index(work / "index")
    subprocess.run(
        [sys.executable, "-m", "dlsetup", "lock", "pytorch", "--backend", "venv", "--variant",
         "cpu", "--torch-index-url", index.torch_url, "--index-url", index.pypi_url,
         "--output", str(work)],
        check=True, capture_output=True,
    )  # fmt: skip
    return next(work.glob("pylock.*.toml"))


def run_create(lock: Path, prefix: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlsetup", "create", "--from-lock", str(lock), "--prefix",
         str(prefix), "--no-smoke"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - start


def run_uv(lock: Path, prefix: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([uv(), "venv", "--quiet", str(prefix)], check=True, env=env)
    subprocess.run(
        [uv(), "pip", "sync", "--quiet", "--preview-features", "pylock", "--python",
         str(prefix / "bin" / "python"), str(lock)],
        check=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="stand-in wheels, no network")
    parser.add_argument("--wheel", type=Path, default=None, help="a torch wheel on disk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-venv-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "UV_CACHE_DIR": str(work / "uv-cache"),
            "JUPYTER_DATA_DIR": str(work / "jupyter"),
            "NO_COLOR": "1",
        }
        if args.tiny:
            lock = tiny_lock(work)
        else:
            wheel = args.wheel or next(Path("/opt/wheels").glob("torch-*+cpu-*.whl"), None)
            if wheel is None:
                sys.exit("no torch wheel on disk: give --wheel PATH, or run with --tiny")
            lock = real_lock(work, wheel)
        packages = lock.read_text().count("[[packages]]")
        print(f"lock: {lock.name}, {packages} packages")
        run_uv(lock, work / "warm", env)  # fill the uv cache: both runs below draw from it
        shutil.rmtree(work / "warm")
        creates, syncs = [], []
        for i in range(args.runs):
            for label, runner, times in (("create", run_create, creates), ("uv", run_uv, syncs)):
                prefix = work / f"{label}-{i}"
                times.append(runner(lock, prefix, env))
                shutil.rmtree(prefix)
        c, u = statistics.median(creates), statistics.median(syncs)
        print(
            f"dlsetup create --from-lock   median {c:6.2f} s  ({', '.join(f'{t:.2f}' for t in creates)})"
        )
        print(
            f"uv venv + uv pip sync        median {u:6.2f} s  ({', '.join(f'{t:.2f}' for t in syncs)})"
        )
        pairs = sorted(a / b for a, b in zip(creates, syncs, strict=True))
        print(
            f"ratio of medians {c / u:.2f}x; of the fastest runs {min(creates) / min(syncs):.2f}x"
        )
        print(
            f"per alternating pair: median {statistics.median(pairs):.2f}x "
            f"(range {pairs[0]:.2f}-{pairs[-1]:.2f}; target <= 1.2x)"
        )


if __name__ == "__main__":
    main()
