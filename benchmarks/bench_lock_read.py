"""Reading a 1,000-package lock in each format ``create --from-lock`` reads (issues 9 and 21:
< 0.2 s each).

Run: .venv/bin/python -m benchmarks.bench_lock_read

Each lock is written by its tool's own code (conda-lock's writer, conda-lock's explicit renderer,
py-rattler's pixi.lock writer) with 1,000 packages for linux-64: 900 conda packages and 100 PyPI
packages (whose conda-lock dependency specs use ``*`` and ``||``, so the conda-lock file takes the
path where rattler is given the conda part only); and a PEP 751 ``pylock.toml`` of 1,000 wheels in
the layout ``uv export --format pylock.toml`` writes, read through ``pipeline.read_lock`` (format
detection by content, the file-name rule, ``packaging.pylock`` validation and ``Pylock.select``).
What is timed for the conda formats is
:func:`dlsetup.envs.lockfiles.formats.read_locked_environment` in this process: detection, parsing,
validation and the rattler records (the median and the best of 7 runs, after one warm-up that
pays the imports), and, beside it, the bare library read it builds on (conda-lock's
``parse_conda_lock_file`` and ``rattler.LockFile.from_path``) for the ratio.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# the tests' own renderer (conda-lock's explicit renderer), one copy for tests and benchmark
from tests.envs.lock_builders import write_explicit  # noqa: E402

PLATFORM = "linux-64"
CHANNEL = "https://conda.anaconda.org/conda-forge"
CONDA, PYPI = 900, 100
TARGET_S = 0.2


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _records() -> list[Any]:
    import rattler

    out = []
    for i in range(CONDA):
        name = f"pkg{i:04d}"
        subdir = "noarch" if i % 5 == 0 else PLATFORM
        record = rattler.PackageRecord(
            name=name,
            version=f"1.{i}.0",
            build=rattler.BuildString(f"h{i:05x}_0"),
            build_number=0,
            subdir=subdir,
            depends=[f"pkg{(i + k) % CONDA:04d} >=1.0" for k in (1, 2, 3) if i + k < CONDA],
            sha256=bytes.fromhex(_digest(name, 64)),
            md5=bytes.fromhex(_digest(name + "md5", 32)),
            size=1000 + i,
        )
        file_name = f"{name}-1.{i}.0-h{i:05x}_0.conda"
        out.append(
            rattler.RepoDataRecord(record, file_name, f"{CHANNEL}/{subdir}/{file_name}", CHANNEL)
        )
    return out


def _wheel(i: int) -> tuple[str, str, str]:
    name = f"wheel{i:03d}"
    return name, f"https://files.example.org/{name}-2.{i}-py3-none-any.whl", _digest(name, 64)


def write_conda_lock(path: Path, records: list[Any]) -> None:
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
    from conda_lock.models.channel import Channel

    from dlsetup.envs.conda.lock import conda_lock_dependencies

    packages = [
        LockedDependency(
            name=r.name.normalized,
            version=str(r.version),
            manager="conda",
            platform=PLATFORM,
            dependencies=conda_lock_dependencies(list(r.depends)),
            url=r.url,
            hash=HashModel(md5=r.md5.hex(), sha256=r.sha256.hex()),
            categories={"main"},
            build=str(r.build),
        )
        for r in records
    ]
    for i in range(PYPI):
        name, url, sha = _wheel(i)
        packages.append(
            LockedDependency(
                name=name,
                version=f"2.{i}",
                manager="pip",
                platform=PLATFORM,
                dependencies={f"wheel{(i + 1) % PYPI:03d}": ">=1,<2 || >=3", "pkg0000": "*"},
                url=url,
                hash=HashModel(sha256=sha),
                categories={"main" if i % 10 else "dev"},
            )
        )
    lockfile = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash={PLATFORM: "0" * 64},
            channels=[Channel.from_string(CHANNEL)],
            platforms=[PLATFORM],
            sources=["environment.yml"],
        ),
    )
    write_conda_lock_file(lockfile, path, metadata_choices=set())


def write_pixi(path: Path, records: list[Any]) -> None:
    import yaml
    from rattler import LockChannel, LockFile, LockPlatform

    lock = LockFile([LockPlatform(PLATFORM)])
    lock.set_channels("default", [LockChannel(CHANNEL)])
    for r in records:
        lock.add_conda_package("default", LockPlatform(PLATFORM), r)
    hashes = {}
    for i in range(PYPI):
        name, url, sha = _wheel(i)
        lock.add_pypi_package("default", LockPlatform(PLATFORM), name, f"2.{i}", url)
        hashes[name] = sha
    lock.to_path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for entry in data["packages"]:  # the sha256 pixi records (py-rattler 0.28 takes none)
        if "pypi" in entry:
            entry["sha256"] = hashes[entry["name"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


#: the wheels of the PEP 751 lock
PYLOCK = 1000


def write_pylock(path: Path) -> None:
    """``uv export --format pylock.toml``'s layout: a header comment, ``lock-version``,
    ``created-by``, ``requires-python``, then one ``[[packages]]`` table per package with its
    ``index`` and its wheels' URL and sha256."""
    lines = [
        "# This file was autogenerated by uv via the following command:",
        "#    uv export --format pylock.toml -o pylock.toml",
        'lock-version = "1.0"',
        'created-by = "uv"',
        'requires-python = ">=3.9"',
    ]
    for i in range(PYLOCK):
        name = f"wheel{i:04d}"
        url = f"https://files.example.org/{name}-2.{i}-py3-none-any.whl"
        lines += [
            "",
            "[[packages]]",
            f'name = "{name}"',
            f'version = "2.{i}"',
            'index = "https://pypi.org/simple"',
            f'wheels = [{{ url = "{url}", hashes = {{ sha256 = "{_digest(name, 64)}" }} }}]',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _pylock_bare(path: Path) -> object:
    import tomllib
    from packaging.pylock import Pylock

    return list(Pylock.from_dict(tomllib.loads(path.read_text(encoding="utf-8"))).select())


#: the dlsetup reads' CPU seconds (median of the 7 runs), by format: on a shared machine the wall
#: time swings with the load, the CPU time much less
CPU_S: dict[str, float] = {}


def _time(fn: Callable[[], object], runs: int = 7, label: str = "") -> tuple[float, float]:
    fn()  # warm-up: imports
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if label:
        CPU_S[label] = statistics.median(cpu)
    return statistics.median(times), min(times)


def main() -> None:
    import rattler
    from conda_lock.lockfile import parse_conda_lock_file

    from dlsetup.envs.location import host_platform
    from dlsetup.envs.lockfiles.formats import read_locked_environment
    from dlsetup.envs.pipeline import read_lock

    with tempfile.TemporaryDirectory(prefix="bench-lock-read-") as tmp:
        root = Path(tmp)
        records = _records()
        conda_lock = root / "big.conda-lock.yml"
        write_conda_lock(conda_lock, records)
        explicit = root / "big-explicit.txt"
        write_explicit(conda_lock, explicit)
        pixi = root / "pixi.lock"
        write_pixi(pixi, records)
        pylock = root / "pylock.toml"
        write_pylock(pylock)
        cases: list[tuple[str, Path, Callable[[], object]]] = [
            ("conda-lock v1", conda_lock, lambda: parse_conda_lock_file(conda_lock)),
            ("explicit", explicit, lambda: explicit.read_text().splitlines()),
            ("pixi.lock", pixi, lambda: rattler.LockFile.from_path(pixi)),
            ("pylock.toml", pylock, lambda: _pylock_bare(pylock)),
        ]
        print(
            f"{CONDA} conda + {PYPI} PyPI packages, {PLATFORM} ({PYLOCK} wheels for pylock.toml); "
            f"median (best) of 7 runs; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} CPUs"
        )
        print(
            f"{'format':<14} {'size':>8} {'dlsetup read':>20} {'(CPU)':>9} "
            f"{'bare library read':>22} {'ratio':>6}  target"
        )
        failed = False
        for label, path, bare in cases:
            pep751 = label == "pylock.toml"
            read: Callable[[Path], Any] = (
                (lambda p: read_lock(p, host_platform())) if pep751
                else (lambda p: read_locked_environment(p, PLATFORM))
            )  # fmt: skip
            locked = read(path)
            want = (0, PYLOCK) if pep751 else (CONDA, PYPI)
            assert (len(locked.conda), len(locked.pypi)) == want, label
            median, best = _time(lambda p=path, r=read: r(p), label=label)
            bare_median, bare_best = _time(bare)
            ok = median < TARGET_S
            failed |= not ok
            print(
                f"{label:<14} {path.stat().st_size // 1024:>6}KB "
                f"{median * 1000:>9.1f} ms ({best * 1000:5.1f}) "
                f"{CPU_S[label] * 1000:>6.1f} ms "
                f"{bare_median * 1000:>11.1f} ms ({bare_best * 1000:5.1f}) "
                f"{median / bare_median:>6.2f}  {'<' if ok else '>='} {TARGET_S * 1000:.0f} ms "
                f"{'ok' if ok else 'MISSED'}"
            )
        if failed:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
