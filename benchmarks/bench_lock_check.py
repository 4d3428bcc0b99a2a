"""``dlsetup lock --check`` on a 1,000-package lock: the whole CLI process and the library call.

Run: .venv/bin/python -m benchmarks.bench_lock_check   (builds the test channel, locks, grows the
lock to 1,000 packages per platform by copying package entries under new names, then times it)
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def grow(lock: Path, packages: int) -> Path:
    """A copy of ``lock`` (beside it) with ``packages`` package entries: metadata unchanged."""
    text = lock.read_text()
    head, _, body = text.partition("\npackage:\n")
    entries = re.split(r"\n(?=- name: )", body.strip("\n"))
    grown = []
    for i in range(packages):
        entry = entries[i % len(entries)]
        grown.append(re.sub(r"^- name: (\S+)", rf"- name: \g<1>-copy{i}", entry, count=1))
    out = lock.with_name("big-" + lock.name)
    out.write_text(head + "\npackage:\n" + "\n".join(grown) + "\n")
    for suffix in (".environment.yml",):
        stem = lock.name.removesuffix(".conda-lock.yml")
        src = lock.with_name(stem + suffix)
        if src.exists():
            pass  # the metadata's sources still name the original environment file
    return out


def main() -> None:
    from dlsetup.envs.pipeline import check_lock
    from tests.envs.channel import build_channel

    with tempfile.TemporaryDirectory() as tmp:
        channel = build_channel(Path(tmp) / "channel")
        out = Path(tmp) / "locks"
        subprocess.run(
            [sys.executable, "-m", "dlsetup", "lock", "pytorch", "--cuda", "13.0", "--gpu-arch",
             "6.1", "--platform", "linux-64", "--platform", "linux-aarch64", "--channel", channel,
             "--output", str(out)],
            check=True, capture_output=True,
        )  # fmt: skip
        big = grow(out / "pytorch-cuda.conda-lock.yml", 1000)
        print(f"lock: {big.stat().st_size / 1e6:.2f} MB, 1,000 package entries")
        calls = []
        for _ in range(5):
            start = time.perf_counter()
            assert check_lock(big).current
            calls.append(time.perf_counter() - start)
        procs = []
        for _ in range(3):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "dlsetup", "lock", "--check", str(big)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            procs.append(time.perf_counter() - start)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        print(f"check_lock(): median {statistics.median(calls) * 1000:.0f} ms")
        print(f"dlsetup lock --check (whole process): median {statistics.median(procs):.2f} s")


if __name__ == "__main__":
    main()
