"""Kill ``dlsetup create --force`` at random moments: the target is always the old environment,
byte for byte, or the complete new one, and no temporary is left behind (issue 7).

30 runs alternate between two locks (PyTorch and TensorFlow, so old and new differ) on one
prefix. Each is sent SIGKILL or SIGTERM after a random delay (seeded) spread over a whole run:
start-up, locking, fetch and verification, linking, the swap, clean-up. After SIGTERM nothing may
be left at once (but a lock file an earlier SIGKILL left, when the run died before taking it over);
after SIGKILL the clean-up the next run starts with (:func:`dlsetup.envs.staging.clean_leftovers`)
must leave nothing but the harmless lock file (an OS lock: the kernel released it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from dlsetup.envs.staging import clean_leftovers
from tests.support.proc import REPO, run_cli
from tests.support.signals import SIGNALLED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

RUNS = 30
SEED = 20260707
CHECKOUT = {"PYTHONPATH": str(REPO)}


def exact(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under ``root`` with its mode and bytes (a link's target), links not followed."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            data = os.readlink(path).encode()
        elif path.is_file():
            data = path.read_bytes()
        else:
            data = b""
        found[str(path.relative_to(root))] = (info.st_mode, data)
    return found


def normalized(root: Path) -> dict[str, tuple[int, bytes]]:
    """:func:`exact`, less what differs between two builds of one lock: conda-meta's
    ``link.source`` (the build's own package cache, named by its pid)."""
    found = exact(root)
    for name, (mode, data) in found.items():
        if name.startswith("conda-meta/") and name.endswith(".json") and "/dlsetup" not in name:
            record = json.loads(data)
            record.pop("link", None)
            found[name] = (mode, json.dumps(record, sort_keys=True).encode())
    return found


def leftovers(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".dlsetup-"))


def _describe(directory: Path) -> list[tuple[str, list[str]]]:
    """The temporaries in ``directory`` and what they hold (for a failure's message)."""
    return [
        (name, sorted(str(p.relative_to(directory)) for p in (directory / name).rglob("*"))[:8])
        for name in leftovers(directory)
    ]


def _lock(target: str, channel_url: str, out: Path) -> Path:
    proc = run_cli(
        "lock", target, "--variant", "cpu", "--platform", "linux-64", "--channel", channel_url,
        "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out / f"{target}-cpu.conda-lock.yml"


def _command(lock: Path, prefix: Path) -> list[str]:
    return [
        sys.executable, "-m", "dlsetup", "create", "--from-lock", str(lock), "--prefix",
        str(prefix), "--force", "--no-smoke", "--no-jupyter",
    ]  # fmt: skip


def test_create_killed_at_random_points_keeps_the_old_env_or_completes_and_leaves_nothing(
    channel_url: str, tmp_path: Path
) -> None:
    locks = [_lock("pytorch", channel_url, tmp_path), _lock("tensorflow", channel_url, tmp_path)]
    envs = tmp_path / "envs"
    prefix = envs / "target"
    env = {**os.environ, **CHECKOUT}
    # the complete environment of each lock at this prefix; how long a whole run takes, and
    # when its build and swap happen (while its temporaries exist beside the target)
    complete = []
    durations = []
    windows = []
    for lock in locks:
        started = time.monotonic()
        proc = subprocess.Popen(
            _command(lock, prefix), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        seen = []
        while proc.poll() is None:
            if [n for n in leftovers(envs) if not n.startswith(".dlsetup-lock-")]:
                seen.append(time.monotonic() - started)
            time.sleep(0.002)
        durations.append(time.monotonic() - started)
        assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
        complete.append(normalized(prefix))
        if seen:
            windows.append((seen[0], seen[-1]))
    assert complete[0] != complete[1]
    longest = max(durations)
    # half the kills anywhere in a run, half where the build and the swap happen
    build = (min(w[0] for w in windows), max(w[1] for w in windows)) if windows else (0, longest)

    rng = random.Random(SEED)
    current = 1  # the tensorflow environment is in place
    outcomes: Counter[str] = Counter()
    for run in range(RUNS):
        new = 1 - current
        before = exact(prefix)
        stale_lock = leftovers(envs)  # the lock file a SIGKILLed run left (harmless), or none
        sig = rng.choice((signal.SIGKILL, signal.SIGTERM))
        delay = (
            rng.uniform(0, longest * 1.1)
            if run % 2
            else rng.uniform(max(0, build[0] - 0.02), build[1] + 0.02)
        )
        proc = subprocess.Popen(
            _command(locks[new], prefix),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **SIGNALLED,
        )
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        where = f"run {run}: {sig.name} after {delay:.2f} s, exit {proc.returncode}"
        if sig == signal.SIGTERM:
            # 143 via Terminated; -15 only before dlsetup installed its handler; 0: it finished
            assert proc.returncode in (0, 143, -signal.SIGTERM), f"{where}\n{stderr}"
            # Known, outside install (reported): a SIGTERM that lands in an import's module-lock
            # weakref callback is printed as "Exception ignored" and lost; create then finishes.
            known = "Exception ignored in: <function _get_module_lock.<locals>.cb"
            assert "Traceback" not in stderr or known in stderr, f"{where}\n{stderr}"
            # at once: a run that got as far as the lock removed it, even one a SIGKILL left
            assert leftovers(envs) in ([], stale_lock), f"{where}: {_describe(envs)}\n{stderr}"
        else:
            assert proc.returncode in (0, -signal.SIGKILL), f"{where}\n{stderr}"
            clean_leftovers(prefix)  # what the next create does first
            assert [n for n in leftovers(envs) if n != ".dlsetup-lock-target"] == [], where
        outcomes[f"exit {proc.returncode}"] += 1
        if exact(prefix) == before:
            outcomes[f"{sig.name}: old kept"] += 1
        else:
            assert normalized(prefix) == complete[new], f"{where}: neither the old nor the new env"
            outcomes[f"{sig.name}: new complete"] += 1
            current = new
    print(
        f"\n{RUNS} runs, a whole run {longest:.2f} s, build and swap at {build[0]:.2f}-"
        f"{build[1]:.2f} s: {dict(sorted(outcomes.items()))}"
    )
    # the next run completes and leaves nothing at all
    done = subprocess.run(
        _command(locks[1 - current], prefix), env=env, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert normalized(prefix) == complete[1 - current]
    assert leftovers(envs) == []
