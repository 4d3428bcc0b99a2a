"""Locks in the shapes the real tools write, over a small local channel and local wheels.

* :func:`build_fixture` builds a small conda channel with :mod:`tests.envs.channel`'s real
  archives: a **runnable Python** (``python 3.11.7 h0_0_cpython``: the test interpreter's own binary
  copied to ``bin/python`` in a conda-forge-like layout, :func:`python_files`, so ``sys.prefix``
  and ``site-packages`` are the environment's own wherever it lies — the staging folder during
  ``create``, then the final prefix — a stand-in for conda-forge's python that uv installs into
  and that reports what is really installed), ``python_abi``,
  and noarch-python packages ``pip``, ``tinyconda`` (main) and ``tinyconda-dev`` (dev); and tiny
  real wheels (:mod:`tests.support.wheels`): ``tinyalpha`` (needs ``tinybeta``), ``tinybeta``,
  ``tinydev`` (a console script) and ``tinyother``.
* :func:`write_conda_lock` writes a conda-lock v1 file with conda-lock's own writer
  (``conda_lock.lockfile.write_conda_lock_file``): conda packages from a rattler solve, PyPI
  entries whose dependency specs are conda-lock's ``*`` and ``||`` ranges, a ``dev`` category.
* :func:`lock_args` is the argument list of one ``dlsetup lock`` against a test channel.
* :func:`write_explicit` renders it with conda-lock's own explicit renderer
  (``render_lockfile_for_platform(kind="explicit")``: ``URL#md5`` lines and ``# pip`` lines).
* :func:`write_pixi_lock` writes a pixi.lock with py-rattler's writer (``LockFile.to_path``) —
  two environments, conda and PyPI packages — then adds to each PyPI entry the ``sha256`` and
  ``requires_dist`` pixi records (py-rattler 0.28's ``add_pypi_package`` takes no hash), and
  checks that rattler reads the hashes back.
* :func:`write_pixi_lock_v6` writes the same environments in pixi's **version 6** format (pixi
  0.40-0.5x, still the most common in repositories), field for field as in genuine v6 files.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dlsetup.envs.conda.lock import conda_lock_dependencies
from tests.envs.channel import Package, write_archive
from tests.support.proc import REPO, run_cli
from tests.support.wheels import Wheel, build_wheel

PLATFORM = "linux-64"
#: the mark of every test module that builds an environment from the fixture
LINUX_ONLY = pytest.mark.skipif(
    sys.platform != "linux", reason="the fixture's python is this Linux interpreter's binary"
)
PY_VERSION = "3.11.7"


def _base_python() -> tuple[Path, str]:
    """The real interpreter under the test venv (its binary), and its version."""
    exe = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    return exe, f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"


def python_files(exe: Path, mm: str) -> dict[str, bytes]:
    """A conda-forge-like python layout around the real interpreter binary, no ``pyvenv.cfg``.

    CPython finds its prefix from the binary's location: ``lib/pythonX.Y/os.py`` (the landmark)
    next to ``bin/`` makes ``sys.prefix`` the environment wherever it lies (the staging folder,
    then the final one), as with conda-forge's python. Startup needs ``encodings`` from that
    prefix (copied, ~1.5 MB of ``.py`` files); the rest of the standard library is found
    through a ``.pth`` file naming the real one (``site`` reads it after startup). The
    environment's ``site-packages`` is its own.
    """
    stdlib = exe.parent.parent / "lib" / f"python{mm}"
    lib = f"lib/python{mm}"
    files = {
        "bin/python": exe.read_bytes(),
        f"{lib}/os.py": (stdlib / "os.py").read_bytes(),
        f"{lib}/lib-dynload/README": b"the real lib-dynload is on sys.path (site-packages .pth)\n",
        f"{lib}/site-packages/_real_stdlib.pth": f"{stdlib}\n{stdlib / 'lib-dynload'}\n".encode(),
    }
    for module in sorted((stdlib / "encodings").glob("*.py")):
        files[f"{lib}/encodings/{module.name}"] = module.read_bytes()
    return files


def conda_packages() -> list[Package]:
    exe, version = _base_python()
    mm = ".".join(version.split(".")[:2])
    tag = mm.replace(".", "")
    noarch_py = {"noarch": "python", "subdir": "noarch", "build": "pyhd8ed1ab_0"}
    return [
        Package(
            name="python",
            version=version,
            build="h0_0_cpython",
            subdir=PLATFORM,
            constrains=[f"python_abi {mm}.* *_cp{tag}"],
            files=python_files(exe, mm),
        ),
        Package(name="python_abi", version=mm, build=f"8_cp{tag}", subdir=PLATFORM),
        *(
            Package(
                name=name,
                version=ver,
                depends=["python >=3.9"],
                files={f"site-packages/{name.replace('-', '_')}/__init__.py": b"# stand-in\n"},
                **noarch_py,  # type: ignore[arg-type]
            )
            for name, ver in (("pip", "25.2"), ("tinyconda", "1.0"), ("tinyconda-dev", "2.0"))
        ),
    ]


WHEELS = (
    Wheel("tinyalpha", "1.0", requires=("tinybeta>=0.1",)),
    Wheel("tinybeta", "0.5"),
    Wheel(
        "tinydev",
        "1.0",
        files={
            "tinydev/cli.py": b"def main():\n    print('tinydev ok')\n",
            "tinydev-1.0.dist-info/entry_points.txt": b"[console_scripts]\ntinydev = tinydev.cli:main\n",
        },
    ),
    Wheel("tinyother", "3.0"),
)


@dataclass(frozen=True)
class Fixture:
    """A built channel and wheel directory."""

    channel_dir: Path
    channel_url: str
    wheels: dict[str, Path]

    def wheel_url(self, name: str) -> str:
        return self.wheels[name].resolve().as_uri()

    def wheel_sha256(self, name: str) -> str:
        return hashlib.sha256(self.wheels[name].read_bytes()).hexdigest()


def build_fixture(root: Path) -> Fixture:
    import rattler.index

    channel = root / "channel"
    for pkg in conda_packages():
        write_archive(pkg, channel / pkg.subdir)
    for subdir in (PLATFORM, "noarch"):
        (channel / subdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False, force=True))
    wheels = {w.name: build_wheel(root / "wheels", w) for w in WHEELS}
    return Fixture(channel, channel.resolve().as_uri(), wheels)


def solve(fixture: Fixture, specs: list[str]) -> list[Any]:
    import rattler

    return list(
        asyncio.run(
            rattler.solve(
                sources=[fixture.channel_url],
                specs=specs,
                platforms=[PLATFORM, "noarch"],  # type: ignore[list-item]
                gateway=rattler.Gateway(cache_dir=fixture.channel_dir.parent / "gateway"),
            )
        )
    )


#: PyPI entries of the conda-lock file: (name, category, conda-lock dependency specs)
PIP_ENTRIES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("tinyalpha", "main", {"tinybeta": ">=0.1,<0.9 || >=1.0", "tinyconda": "*"}),
    ("tinybeta", "main", {}),
    ("tinydev", "dev", {"tinyalpha": "*"}),
)


def write_conda_lock(
    fixture: Fixture, path: Path, *, pip: bool = True, sha256: bool = True
) -> Path:
    """A conda-lock v1 file written by conda-lock's own writer (see the module docstring);
    ``sha256=False``: the conda packages with an md5 only, as in conda-lock's own test locks."""
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
    from conda_lock.models.channel import Channel

    main = solve(fixture, ["python 3.11.*", "pip", "tinyconda"])
    dev = [r for r in solve(fixture, ["tinyconda-dev"]) if r.name.normalized == "tinyconda-dev"]
    packages = [
        LockedDependency(
            name=r.name.normalized,
            version=str(r.version),
            manager="conda",
            platform=PLATFORM,
            dependencies=conda_lock_dependencies(list(r.depends)),
            url=r.url,
            hash=HashModel(md5=r.md5.hex(), sha256=r.sha256.hex() if sha256 else None),
            categories={category},
            build=str(r.build),
        )
        for records, category in ((main, "main"), (dev, "dev"))
        for r in records
    ]
    if pip:
        versions = {w.name: w.version for w in WHEELS}
        packages += [
            LockedDependency(
                name=name,
                version=versions[name],
                manager="pip",
                platform=PLATFORM,
                dependencies=deps,
                url=fixture.wheel_url(name),
                hash=HashModel(sha256=fixture.wheel_sha256(name)),
                categories={category},
            )
            for name, category, deps in PIP_ENTRIES
        ]
    lockfile = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash={PLATFORM: "0" * 64},
            channels=[Channel.from_string(fixture.channel_url)],
            platforms=[PLATFORM],
            sources=["environment.yml"],
        ),
    )
    write_conda_lock_file(lockfile, path, metadata_choices=set())
    return path


def lock_args(
    target: str | Path,
    channel: str,
    output: str | Path,
    *extra: str,
    variant: str | None = "cpu",
    platform: str = PLATFORM,
) -> tuple[str, ...]:
    """``lock TARGET --variant cpu --platform linux-64 --channel CHANNEL --output OUTPUT EXTRA...``:
    the arguments of one ``dlsetup lock`` against a test channel, for ``run_cli``, CliRunner or the
    installed ``dlsetup``.

    Args:
        target: ``pytorch``, ``both``, or an environment file.
        channel: the channel's URL (or a bad one, for a refusal).
        output: the ``--output`` directory.
        extra: more options, after these (``--json``, ``--cuda 13.0``).
        variant: ``--variant``; ``None`` leaves it out (``auto``, dlsetup's default).
        platform: ``--platform``.
    """
    variant_args = ("--variant", variant) if variant is not None else ()
    return (
        "lock", str(target), *variant_args, "--platform", platform, "--channel", channel,
        "--output", str(output), *extra,
    )  # fmt: skip


def write_explicit(conda_lock: Path, path: Path, *, dev: bool = True) -> Path:
    """``conda-lock render -k explicit`` of ``conda_lock``, with conda-lock's own renderer."""
    from conda_lock.conda_lock import render_lockfile_for_platform
    from conda_lock.lockfile import parse_conda_lock_file

    lines = render_lockfile_for_platform(
        lockfile=parse_conda_lock_file(conda_lock),
        include_dev_dependencies=dev,
        extras=None,
        kind="explicit",
        platform=PLATFORM,
        suppress_warning_for_pip_and_explicit=True,
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


#: pixi.lock environments: name -> (conda specs, PyPI packages)
PIXI_ENVS = {
    "default": (["python 3.11.*", "pip", "tinyconda"], ("tinyalpha", "tinybeta")),
    "dev": (["python 3.11.*", "tinyconda-dev"], ("tinydev", "tinyalpha", "tinybeta", "tinyother")),
}


def write_pixi_lock(
    fixture: Fixture, path: Path, *, urls: dict[str, str] | None = None, hashes: bool = True
) -> Path:
    """A pixi.lock with two environments (see the module docstring)."""
    import rattler
    import yaml
    from rattler import LockChannel, LockFile, LockPlatform

    urls = urls or {}
    versions = {w.name: w.version for w in WHEELS}
    lock = LockFile([LockPlatform(PLATFORM)])
    for env, (specs, pypi) in PIXI_ENVS.items():
        lock.set_channels(env, [LockChannel(fixture.channel_url)])
        for record in solve(fixture, specs):
            lock.add_conda_package(env, LockPlatform(PLATFORM), record)
        for name in pypi:
            url = urls.get(name, fixture.wheel_url(name))
            lock.add_pypi_package(env, LockPlatform(PLATFORM), name, versions[name], url)
    lock.to_path(path)
    if hashes:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        requires = {w.name: list(w.requires) for w in WHEELS}
        for entry in data["packages"]:
            if "pypi" in entry:
                entry["sha256"] = fixture.wheel_sha256(entry["name"])
                if requires[entry["name"]]:
                    entry["requires_dist"] = requires[entry["name"]]
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        back = rattler.LockFile.from_path(path).default_environment()
        assert back is not None
        assert all(p.hashes and p.hashes.sha256 for p in back.pypi_packages()[PLATFORM])
    return path


def _v6_conda_entry(record: Any, *, sha256: bool = True) -> dict[str, Any]:
    """A conda package as pixi writes it in a v6 pixi.lock: the URL, then only what the URL does
    not say (name, version and build come from the file name; the subdir too, except from a
    ``file://`` URL, where rattler's v6 reader asks for it)."""
    entry: dict[str, Any] = {"conda": record.url}
    if record.url.startswith("file:"):  # rattler derives the subdir from http(s) URLs only
        entry["subdir"] = str(record.subdir)
    if sha256:
        entry["sha256"] = record.sha256.hex()
    entry["md5"] = record.md5.hex()
    if record.depends:
        entry["depends"] = list(record.depends)
    if record.constrains:
        entry["constrains"] = list(record.constrains)
    if record.noarch.python:
        entry["noarch"] = "python"
    if record.license:
        entry["license"] = record.license
    if record.size:
        entry["size"] = record.size
    if record.timestamp is not None:
        entry["timestamp"] = int(record.timestamp.timestamp() * 1000)
    return entry


def write_pixi_lock_v6(
    fixture: Fixture,
    path: Path,
    *,
    sha256: bool = True,
    extra_pypi: tuple[dict[str, Any], ...] = (),
) -> Path:
    """A pixi.lock in the version 6 format pixi 0.40-0.5x writes (the :data:`PIXI_ENVS`
    environments), copied field for field from genuine v6 files: ``channels`` as ``- url:``,
    ``indexes``, per-platform ``- conda:``/``- pypi:`` URL lists, and a ``packages`` list whose
    conda entries omit what the file name says and whose PyPI entries carry name, version,
    sha256, ``requires_dist`` and ``requires_python``. ``sha256=False``: conda entries with an md5
    only (a channel that publishes no sha256); ``extra_pypi``: more PyPI entries of the default
    environment, as pixi writes them (``{"pypi": URL, "name": ..., ...}``)."""
    import yaml

    versions = {w.name: w.version for w in WHEELS}
    requires = {w.name: list(w.requires) for w in WHEELS}
    environments: dict[str, Any] = {}
    packages: dict[str, dict[str, Any]] = {}
    for env, (specs, pypi) in PIXI_ENVS.items():
        records = sorted(solve(fixture, specs), key=lambda r: str(r.name.normalized))
        urls: list[dict[str, str]] = [{"conda": r.url} for r in records]
        for r in records:
            packages.setdefault(r.url, _v6_conda_entry(r, sha256=sha256))
        for name in sorted(pypi):
            url = fixture.wheel_url(name)
            urls.append({"pypi": url})
            entry: dict[str, Any] = {"pypi": url, "name": name, "version": versions[name],
                                     "sha256": fixture.wheel_sha256(name)}  # fmt: skip
            if requires[name]:
                entry["requires_dist"] = requires[name]
            entry["requires_python"] = ">=3.9"
            packages.setdefault(url, entry)
        for entry in extra_pypi if env == "default" else ():
            urls.append({"pypi": entry["pypi"]})
            packages.setdefault(entry["pypi"], entry)
        environments[env] = {
            "channels": [{"url": fixture.channel_url + "/"}],
            "indexes": ["https://pypi.org/simple"],
            "packages": {PLATFORM: urls},
        }
    data = {"version": 6, "environments": environments, "packages": list(packages.values())}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- running create on a lock, and what it leaves ----------------------------------------------

#: run the checkout's dlsetup (not an installed copy)
CHECKOUT = {"PYTHONPATH": str(REPO)}


def create_from_lock(lock: Path, prefix: Path, *extra: str) -> tuple[int, str, str]:
    """``dlsetup create --from-lock LOCK --prefix PREFIX --no-smoke --no-jupyter EXTRA...``:
    ``(exit code, stdout, stderr)``."""
    proc = run_cli(
        "create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
        "--no-jupyter", *extra, env=CHECKOUT,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def temporaries(directory: Path) -> list[str]:
    """dlsetup's temporaries in ``directory`` (none when create removed the directory it made)."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".dlsetup-"))


def make_env(prefix: Path) -> None:
    """A small conda environment (``conda-meta/``) to be replaced."""
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "history").write_text("==> old <==\n")
    (prefix / "bin").mkdir()
    (prefix / "bin" / "tool").write_text("old tool\n")
