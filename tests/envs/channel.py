"""A local conda channel shaped like conda-forge, built from real package archives at test time.

Every package is a real ``.tar.bz2`` archive with ``info/index.json``, ``info/paths.json``,
``info/files`` and payload files, and the channel is indexed with ``rattler.index.index_fs`` so the
real solver and installer run against it. Shapes follow conda-forge (see compat.yaml):

* ``python`` 3.11 and 3.12: a stand-in whose ``bin/python`` is a small shell script that exits 3
  (so it is not a runnable Python) and whose ``lib/dlsetup-prefix.txt`` contains the prefix
  placeholder, to prove rewriting. With ``python_exec`` (the *runnable* variant), ``bin/python``
  on the Unix subdirs instead execs that real interpreter (the test venv's, which has torch and
  tensorflow), after checking that the prefix placeholder in it was rewritten to an existing
  environment, so ``dlsetup create`` really runs ``dlsetup smoke`` inside the new environment.
* ``numpy``, ``pip`` (noarch: python), ``ipykernel`` and ``jupyter`` stand-ins (noarch: python).
* ``cuda-version`` 11.8, 12.6, 12.8, 12.9, 13.0 (noarch: generic, ``constrains: __cuda >=MAJOR``).
* ``pytorch`` 2.13.0, shaped like conda-forge's current matrix (compat.yaml ``conda_forge``):
  ``cpu_generic``/``cpu_mkl`` builds everywhere (osx-64 and osx-arm64 included); CUDA builds with
  a build number 200 higher that depend on ``__cuda`` and ``cuda-version``: ``cuda129_*`` and
  ``cuda130_*`` side by side on linux-64 and linux-aarch64, ``cuda128_*`` and ``cuda130_*`` on
  win-64. Left alone the solver takes ``cuda130`` (the newer ``cuda-version``); nothing in the
  channel says which GPUs a build runs on, which is why dlsetup pins the line. CUDA 13 builds
  need ``__glibc >=2.28``; on linux-aarch64 every CUDA build depends on ``arm-variant * sbsa``,
  and a second ``cuda129`` build (the Jetson one) on ``arm-variant * tegra`` and
  ``__glibc >=2.34``. Metapackages ``pytorch-cpu`` and ``pytorch-gpu``.
* ``arm-variant`` ``sbsa`` and ``tegra`` builds on linux-aarch64.
* ``tensorflow`` 2.19.1: CPU builds on linux-64 and linux-aarch64, a ``cuda128py3XXh…`` build on
  linux-64; Python 3.11 and 3.12 only.
* PyTorch's companions, shaped like conda-forge's (compat.yaml ``conda_forge_companions``):
  ``torchvision`` 0.28.0 built with pytorch 2.13 (``pytorch >=2.13.0,<2.14.0a0``, pytorch's
  run_exports), ``cpu_py3XX_h…_1`` everywhere and one CUDA build per pytorch line
  (``cuda129_py3XX_h…_1``...) that depends on ``pytorch * cuda*``, ``__cuda`` and the line's
  ``cuda-version`` (conda-forge gets that through its CUDA libraries); the same build number for
  CPU and CUDA, as in the recipe, so nothing but the spec keeps a CPU torchvision from a CUDA
  PyTorch. ``torchaudio`` 2.11.0 built with pytorch 2.10 (``pytorch >=2.10.0,<2.11.0a0``):
  ``cpu_py3XXh…_0`` and ``cuda129_``/``cuda130_py3XXh…_0`` on Linux, CPU on macOS, none on
  win-64. :func:`build_channel` can leave out the CUDA torchvision builds
  (``torchvision_cuda=False``) or build torchaudio with another pytorch (``torchaudio_pytorch``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64")
PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
TIMESTAMP = 1_760_000_000_000  # ms since the epoch: a fixed date so archives are reproducible
PYTHONS = ("3.11", "3.12")


@dataclass
class Package:
    """One package archive to build."""

    name: str
    version: str
    build: str
    subdir: str
    build_number: int = 0
    depends: list[str] = field(default_factory=list)
    constrains: list[str] = field(default_factory=list)
    noarch: str | None = None
    track_features: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    #: paths (keys of ``files`` or ``symlinks``) that contain the prefix placeholder in text mode
    prefix_files: tuple[str, ...] = ()
    #: archive members that are symbolic links: path -> link target. paths.json lists them as
    #: ``softlink``, unless they are in ``prefix_files`` (a hostile package: a "text file with a
    #: prefix placeholder" that is really a link)
    symlinks: dict[str, str] = field(default_factory=dict)
    #: archive member modes (default 0o755 under bin/ and Scripts/, else 0o644)
    modes: dict[str, int] = field(default_factory=dict)
    #: raw ``paths.json`` entries written instead of the computed ones (a hostile package)
    paths_json: list[dict[str, object]] | None = None
    #: extra raw members of the archive (path -> bytes), written as given, not in paths.json
    raw_members: dict[str, bytes] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"


def _index_json(pkg: Package) -> dict[str, object]:
    data: dict[str, object] = {
        "name": pkg.name,
        "version": pkg.version,
        "build": pkg.build,
        "build_number": pkg.build_number,
        "depends": pkg.depends,
        "constrains": pkg.constrains,
        "license": "BSD-3-Clause",
        "subdir": pkg.subdir,
        "timestamp": TIMESTAMP,
    }
    if pkg.noarch:
        data["noarch"] = pkg.noarch
    else:
        platform, _, arch = pkg.subdir.partition("-")
        data["platform"] = {"osx": "osx", "win": "win", "linux": "linux"}[platform]
        data["arch"] = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}[arch]
    if pkg.track_features:
        data["track_features"] = pkg.track_features
    return data


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = TIMESTAMP // 1000
    tar.addfile(info, io.BytesIO(data))


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    info.mtime = TIMESTAMP // 1000
    tar.addfile(info)


def write_archive(pkg: Package, directory: Path) -> Path:
    """Write ``pkg`` as a ``.tar.bz2`` conda package into ``directory``; return its path."""
    paths = []
    for path, data in sorted(pkg.files.items()):
        entry: dict[str, object] = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        if path in pkg.prefix_files:
            entry["file_mode"] = "text"
            entry["prefix_placeholder"] = PLACEHOLDER
        paths.append(entry)
    for path, link in sorted(pkg.symlinks.items()):
        entry = {"_path": path, "path_type": "softlink", "size_in_bytes": len(link)}
        if path in pkg.prefix_files:  # hostile: claims to be a text file with a placeholder
            entry.update(path_type="hardlink", file_mode="text", prefix_placeholder=PLACEHOLDER)
        paths.append(entry)
    if pkg.paths_json is not None:
        paths = pkg.paths_json
    listed = sorted(str(entry["_path"]) for entry in paths)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / pkg.filename
    with tarfile.open(target, "w:bz2") as tar:
        _add(tar, "info/index.json", json.dumps(_index_json(pkg), indent=2).encode())
        _add(tar, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        _add(tar, "info/files", "".join(f"{p}\n" for p in listed).encode())
        if pkg.prefix_files:
            has_prefix = "".join(f"{PLACEHOLDER} text {p}\n" for p in pkg.prefix_files)
            _add(tar, "info/has_prefix", has_prefix.encode())
        for path, data in sorted(pkg.files.items()):
            default = 0o755 if path.startswith(("bin/", "Scripts/")) else 0o644
            _add(tar, path, data, pkg.modes.get(path, default))
        for path, link in sorted(pkg.symlinks.items()):
            _add_symlink(tar, path, link)
        for path, data in sorted(pkg.raw_members.items()):
            _add(tar, path, data)
    return target


def _next_minor(py: str) -> str:
    major, minor = py.split(".")
    return f"{major}.{int(minor) + 1}"


def _py_tag(py: str) -> str:
    return "py" + py.replace(".", "")


def _python_script(py: str, python_exec: str | None) -> bytes:
    if python_exec is None:
        return (
            f"#!/bin/sh\n# stand-in python {py} installed in {PLACEHOLDER}\n"
            "echo 'stand-in python: not runnable' >&2\nexit 3\n"
        ).encode()
    return (
        f"#!/bin/sh\n# python {py} stand-in: runs the test interpreter from the environment\n"
        f'prefix="{PLACEHOLDER}"\n'
        'if [ ! -d "$prefix/conda-meta" ]; then\n'
        '  echo "python stand-in: prefix $prefix was not rewritten to the environment" >&2\n'
        "  exit 4\n"
        "fi\n"
        f'exec "{python_exec}" "$@"\n'
    ).encode()


def _python_packages(subdir: str, python_exec: str | None = None) -> Iterable[Package]:
    windows = subdir.startswith("win")
    for py in PYTHONS:
        exe = "python.exe" if windows else "bin/python"
        script = _python_script(py, None if windows else python_exec)
        files = {
            exe: script,
            "lib/dlsetup-prefix.txt" if not windows else "Lib/dlsetup-prefix.txt": (
                f"prefix={PLACEHOLDER}\n".encode()
            ),
        }
        yield Package(
            name="python",
            version=f"{py}.9",
            build="h0_0_cpython",
            subdir=subdir,
            depends=[],
            constrains=[f"python_abi {py}.* *_cp{py.replace('.', '')}"],
            files=files,
            prefix_files=(*(p for p in files if p.endswith("dlsetup-prefix.txt")), exe),
        )
        yield Package(
            name="python_abi",
            version=py,
            build=f"8_cp{py.replace('.', '')}",
            subdir=subdir,
            files={},
        )
        yield Package(
            name="numpy",
            version="2.3.4",
            build=f"{_py_tag(py)}h0_0",
            subdir=subdir,
            depends=[
                f"python >={py},<{_next_minor(py)}.0a0",
                f"python_abi {py}.* *_cp{py.replace('.', '')}",
            ],
            files={f"lib/numpy-{py}.txt": b"numpy stand-in\n"},
        )


def _pytorch_packages(subdir: str) -> Iterable[Package]:
    cuda_builds = {
        "linux-64": ("129", "130"),
        "linux-aarch64": ("129", "130"),
        "win-64": ("128", "130"),
    }
    for py in PYTHONS:
        pydeps = [
            f"python >={py},<{_next_minor(py)}.0a0",
            f"python_abi {py}.* *_cp{py.replace('.', '')}",
            "numpy >=1.23",
        ]
        blas = "mkl" if subdir in ("linux-64", "win-64") else "generic"
        yield Package(
            name="pytorch",
            version="2.13.0",
            build=f"cpu_{blas}_{_py_tag(py)}h0_{100 if blas == 'mkl' else 0}",
            build_number=100 if blas == "mkl" else 0,
            subdir=subdir,
            depends=pydeps,
            files={f"lib/torch-{py}-cpu.txt": b"pytorch cpu stand-in\n"},
        )
        aarch64 = subdir == "linux-aarch64"
        variants = [(cu, "sbsa" if aarch64 else None) for cu in cuda_builds.get(subdir, ())]
        if aarch64:
            variants.append(("129", "tegra"))
        for cu, arm in variants:
            major, minor = cu[:-1], cu[-1]
            depends = [*pydeps, "__cuda", f"cuda-version >={major}.{minor},<{int(major) + 1}"]
            if subdir.startswith("linux"):
                glibc = "2.34" if arm == "tegra" else "2.28" if major == "13" else "2.17"
                depends.append(f"__glibc >={glibc}")
            if arm is not None:
                depends.append(f"arm-variant * {arm}")
            number = 300 if blas == "mkl" else 200
            yield Package(
                name="pytorch",
                version="2.13.0",
                build=f"cuda{cu}_{blas}_{_py_tag(py)}h{1 if arm == 'tegra' else 0}_{number}",
                build_number=number,
                subdir=subdir,
                depends=depends,
                files={f"lib/torch-{py}-cuda{cu}.txt": b"pytorch cuda stand-in\n"},
            )
    if subdir == "linux-aarch64":
        for arm in ("sbsa", "tegra"):
            yield Package(name="arm-variant", version="1.0.0", build=arm, subdir=subdir)
    yield Package(
        name="pytorch-cpu",
        version="2.13.0",
        build="cpu_h0_0",
        subdir=subdir,
        depends=["pytorch 2.13.0 cpu_*"],
    )
    if subdir in cuda_builds:
        yield Package(
            name="pytorch-gpu",
            version="2.13.0",
            build="cuda_h0_200",
            build_number=200,
            subdir=subdir,
            depends=["pytorch 2.13.0 cuda*"],
        )


#: the CUDA lines of pytorch per subdir (the companions have the same ones)
CUDA_LINES = {"linux-64": ("129", "130"), "linux-aarch64": ("129", "130"), "win-64": ("128", "130")}


def _next_release(version: str) -> str:
    major, minor = version.split(".")[:2]
    return f"{major}.{int(minor) + 1}"


def _companion_packages(
    subdir: str, *, torchvision_cuda: bool = True, torchaudio_pytorch: str = "2.10"
) -> Iterable[Package]:
    """torchvision and torchaudio, shaped like conda-forge's feedstocks."""
    shapes = [("torchvision", "0.28.0", "2.13", "_", 1, True)]
    if not subdir.startswith("win"):
        shapes.append(("torchaudio", "2.11.0", torchaudio_pytorch, "", 0, False))
    for name, version, torch, sep, number, tegra in shapes:
        pin = f"pytorch >={torch}.0,<{_next_release(torch)}.0a0"
        for py in PYTHONS:
            pydeps = [
                f"python >={py},<{_next_minor(py)}.0a0",
                f"python_abi {py}.* *_cp{py.replace('.', '')}",
                pin,
            ]
            yield Package(
                name=name,
                version=version,
                build=f"cpu_{_py_tag(py)}{sep}h0_{number}",
                build_number=number,
                subdir=subdir,
                depends=[*pydeps, "pytorch * cpu*"],
                files={f"lib/{name}-{py}-cpu.txt": f"{name} cpu stand-in\n".encode()},
            )
            if name == "torchvision" and not torchvision_cuda:
                continue
            aarch64 = subdir == "linux-aarch64"
            variants = [(cu, "sbsa" if aarch64 else None) for cu in CUDA_LINES.get(subdir, ())]
            if aarch64 and tegra:
                variants.append(("129", "tegra"))
            for cu, arm in variants:
                major, minor = cu[:-1], cu[-1]
                depends = [
                    *pydeps,
                    "pytorch * cuda*",
                    "__cuda",
                    f"cuda-version >={major}.{minor},<{int(major) + 1}",
                ]
                if subdir.startswith("linux"):
                    glibc = "2.34" if arm == "tegra" else "2.28" if major == "13" else "2.17"
                    depends.append(f"__glibc >={glibc}")
                if arm is not None and tegra:
                    depends.append(f"arm-variant * {arm}")
                yield Package(
                    name=name,
                    version=version,
                    build=f"cuda{cu}_{_py_tag(py)}{sep}h{1 if arm == 'tegra' else 0}_{number}",
                    build_number=number,
                    subdir=subdir,
                    depends=depends,
                    files={f"lib/{name}-{py}-cuda{cu}.txt": f"{name} cuda stand-in\n".encode()},
                )


def _tensorflow_packages(subdir: str) -> Iterable[Package]:
    if not subdir.startswith("linux"):
        return
    for py in PYTHONS:
        pydeps = [
            f"python >={py},<{_next_minor(py)}.0a0",
            f"python_abi {py}.* *_cp{py.replace('.', '')}",
            "numpy >=1.26",
        ]
        yield Package(
            name="tensorflow",
            version="2.19.1",
            build=f"cpu_{_py_tag(py)}h0_0",
            subdir=subdir,
            depends=pydeps,
            track_features="tensorflow-cpu",
            files={f"lib/tensorflow-{py}-cpu.txt": b"tensorflow cpu stand-in\n"},
        )
        if subdir == "linux-64":
            yield Package(
                name="tensorflow",
                version="2.19.1",
                build=f"cuda128{_py_tag(py)}h0_200",
                build_number=200,
                subdir=subdir,
                depends=[*pydeps, "__cuda", "cuda-version >=12.8,<13"],
                files={f"lib/tensorflow-{py}-cuda128.txt": b"tensorflow cuda stand-in\n"},
            )


def _noarch_packages() -> Iterable[Package]:
    for version in ("11.8", "12.6", "12.8", "12.9", "13.0"):
        major = version.split(".")[0]
        yield Package(
            name="cuda-version",
            version=version,
            build="h0_3",
            build_number=3,
            subdir="noarch",
            noarch="generic",
            constrains=[f"__cuda >={major}", f"cudatoolkit {version}|{version}.*"],
        )
    for name, version, deps in (
        ("pip", "25.2", ["python >=3.9"]),
        ("ipykernel", "6.30.1", ["python >=3.9"]),
        ("jupyter", "1.1.1", ["python >=3.9", "ipykernel"]),
    ):
        yield Package(
            name=name,
            version=version,
            build="pyhd8ed1ab_0",
            subdir="noarch",
            noarch="python",
            depends=deps,
            files={f"site-packages/{name}_standin/__init__.py": f"# {name} stand-in\n".encode()},
        )


def all_packages(
    python_exec: str | None = None,
    *,
    torchvision_cuda: bool = True,
    torchaudio_pytorch: str = "2.10",
) -> list[Package]:
    """Every package of the test channel.

    Args:
        python_exec: when given, the Unix ``bin/python`` stand-ins exec this interpreter.
        torchvision_cuda: build torchvision's CUDA builds (False: only CPU ones exist).
        torchaudio_pytorch: the pytorch release torchaudio is built with (conda-forge: 2.10).
    """
    packages = list(_noarch_packages())
    for subdir in PLATFORMS:
        packages += _python_packages(subdir, python_exec)
        packages += _pytorch_packages(subdir)
        packages += _companion_packages(
            subdir, torchvision_cuda=torchvision_cuda, torchaudio_pytorch=torchaudio_pytorch
        )
        packages += _tensorflow_packages(subdir)
    return packages


def build_channel(
    directory: Path,
    extra: Iterable[Package] = (),
    *,
    python_exec: str | None = None,
    torchvision_cuda: bool = True,
    torchaudio_pytorch: str = "2.10",
) -> str:
    """Build and index the channel in ``directory``; return its ``file://`` URL.

    Args:
        directory: an empty or missing directory.
        extra: more packages to add (for example a large one).
        python_exec: build the runnable variant: ``bin/python`` execs this real interpreter.
        torchvision_cuda: build torchvision's CUDA builds (False: a channel where only CPU
            torchvision builds exist).
        torchaudio_pytorch: the pytorch release torchaudio is built with.
    """
    import rattler.index

    packages = all_packages(
        python_exec, torchvision_cuda=torchvision_cuda, torchaudio_pytorch=torchaudio_pytorch
    )
    for pkg in [*packages, *extra]:
        write_archive(pkg, directory / pkg.subdir)
    for subdir in (*PLATFORMS, "noarch"):
        (directory / subdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(rattler.index.index_fs(directory, write_zst=False, write_shards=False, force=True))
    return directory.resolve().as_uri()
