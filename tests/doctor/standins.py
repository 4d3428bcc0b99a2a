"""Stand-in ``torch`` and ``tensorflow`` packages for the framework probe.

Each builder writes a tiny package into a fresh directory and returns that directory: put it first on
``PYTHONPATH`` and the framework worker imports it instead of the real framework. The stand-ins offer
exactly the attributes the worker reads (``torch.version.cuda``, ``torch.cuda.get_arch_list()``,
``tf.sysconfig.get_build_info()``, ``tf.config.list_physical_devices()``, ...) with scripted values,
or misbehave on import (abort, hang, raise) the way broken installs do.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent


def _write(root: Path, package: str, code: str) -> Path:
    pkg = root / package
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(dedent(code), encoding="utf-8")
    return root


def torch_standin(
    root: Path,
    *,
    version: str = "2.6.0+cu124",
    cuda: str | None = "12.4",
    arch_list: tuple[str, ...] = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    cudnn: int | None = 90100,
    cuda_available: bool = True,
    device_count: int = 1,
    stderr: str = "",
) -> Path:
    """A ``torch`` that reports a scripted build (default: 2.6 for CUDA 12.4, SASS up to sm_90)."""
    return _write(
        root,
        "torch",
        f"""
        import sys
        from types import SimpleNamespace
        if {stderr!r}:
            sys.stderr.write({stderr!r} + "\\n")
        __version__ = {version!r}
        version = SimpleNamespace(cuda={cuda!r}, hip=None)
        cuda = SimpleNamespace(
            get_arch_list=lambda: {list(arch_list) if cuda else []!r},
            is_available=lambda: {cuda_available and cuda is not None!r},
            device_count=lambda: {device_count if cuda else 0!r},
        )
        backends = SimpleNamespace(
            cudnn=SimpleNamespace(version=lambda: {cudnn if cuda else None!r}),
            mps=SimpleNamespace(is_built=lambda: False, is_available=lambda: False),
        )
        """,
    )


def tensorflow_standin(
    root: Path,
    *,
    version: str = "2.17.0",
    cuda_version: str | None = "12.3",
    cudnn_version: str = "8",
    compute_capabilities: tuple[str, ...] = ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"),
    gpus: int = 1,
    stderr: str = "",
) -> Path:
    """A ``tensorflow`` with scripted build info and GPU list; ``stderr`` is printed on import."""
    info: dict[str, object] = {"is_cuda_build": cuda_version is not None, "is_rocm_build": False}
    if cuda_version is not None:
        info.update(
            cuda_version=cuda_version,
            cudnn_version=cudnn_version,
            cuda_compute_capabilities=list(compute_capabilities),
        )
    return _write(
        root,
        "tensorflow",
        f"""
        import sys
        from types import SimpleNamespace
        if {stderr!r}:
            sys.stderr.write({stderr!r} + "\\n")
        __version__ = {version!r}
        _gpus = [SimpleNamespace(name="/physical_device:GPU:%d" % i, device_type="GPU")
                 for i in range({gpus if cuda_version else 0})]
        config = SimpleNamespace(
            list_physical_devices=lambda kind=None: list(_gpus) if kind == "GPU" else [],
            experimental=SimpleNamespace(set_memory_growth=lambda device, enable: None),
        )
        sysconfig = SimpleNamespace(get_build_info=lambda: dict({info!r}))
        """,
    )


def crashing_standin(root: Path, package: str) -> Path:
    """A package whose import aborts the interpreter (SIGABRT), like a bad native library."""
    return _write(root, package, "import os\nos.abort()\n")


def hanging_standin(root: Path, package: str) -> Path:
    """A package whose import never returns."""
    return _write(root, package, "import time\nwhile True:\n    time.sleep(60)\n")


def failing_standin(root: Path, package: str, message: str) -> Path:
    """A package whose import raises ``OSError(message)``, as a missing shared library does."""
    return _write(root, package, f"raise OSError({message!r})\n")
