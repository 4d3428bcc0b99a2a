"""Framework probe worker: runs INSIDE the target interpreter, as a script, by file path.

    python /abs/path/framework_worker.py torch|tensorflow [--full]

Imports only the standard library and the framework (the target env need not have dlsetup).
Prints one line ``DLSETUP_PROBE_JSON: {...}`` on stdout, last; anything else the framework prints
(stdout or stderr) is left to the parent, which reads library-load failures from stderr.
It asks only for build facts and device lists: no tensor, no allocation, no CUDA context.
After torch, its companions torchvision and torchaudio are imported (when installed) to see whether
their compiled extensions load (:func:`probe_companion`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import sys
import time
import traceback
import warnings
from typing import Any

MARKER = "DLSETUP_PROBE_JSON: "


def _safe(fn: Any, *args: Any) -> Any:
    """Call ``fn``; on any exception return ``{"missing": reason}``."""
    try:
        return fn(*args)
    except Exception as exc:
        return {"missing": "error", "detail": f"{type(exc).__name__}: {exc}"}


class CoreNotEnough(Exception):
    """The native core answered with something only the full import explains (the parent then
    probes again with ``--full``, and that import's own error is what doctor reports)."""


#: Device nodes of a GPU driver: NVIDIA's, AMD's ROCm (``kfd``), WSL2's paravirtual GPU (``dxg``).
#: Where one exists, torch is imported completely: its device counts come through NVML and its
#: CUDA initialisation errors are facts doctor diagnoses.
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def _core_only(load: Any) -> Any:
    """Run a core load; any error it raises means the full import must answer instead."""
    try:
        return load()
    except CoreNotEnough:
        raise
    except Exception as exc:
        raise CoreNotEnough(f"{type(exc).__name__}: {exc}"[:500]) from exc


def _package_dirs(name: str) -> tuple[Any, list[str]]:
    spec = importlib.util.find_spec(name)
    return spec, list(spec.submodule_search_locations or []) if spec is not None else []


def _stub_package(name: str, spec: Any, dirs: list[str]) -> None:
    """Put an empty package ``name`` in ``sys.modules`` so its submodules import without its
    ``__init__``."""
    import types

    package = types.ModuleType(name)
    package.__path__ = dirs
    package.__spec__ = spec
    package.__file__ = spec.origin if spec is not None else None
    sys.modules[name] = package


def _torch_core() -> Any:
    """Load torch's native core (``torch._C``) and ``torch/version.py`` without ``torch/__init__``.

    ``import torch`` spends most of its seconds in Python modules (``torch._meta_registrations``,
    ``torch._decomp``, ``torch.nn``...); the native load is where a missing CUDA library, an
    undefined symbol or an illegal instruction shows. Used on Linux where no GPU device node
    exists (then CUDA's answers are "no device" whatever the build) for a CUDA or CPU build;
    returns None otherwise (ROCm, another layout, a GPU here), and the full import is used.
    """
    import glob

    if not sys.platform.startswith("linux") or any(os.path.exists(p) for p in GPU_NODES):
        return None
    spec, dirs = _package_dirs("torch")
    layout = [d for d in dirs if glob.glob(os.path.join(d, "_C.*.so"))]
    if not layout or not os.path.isfile(os.path.join(layout[0], "version.py")):
        return None
    _stub_package("torch", spec, dirs)
    version = importlib.import_module("torch.version")
    if getattr(version, "hip", None):
        raise CoreNotEnough("a ROCm build: its device API needs the full import")
    return version, importlib.import_module("torch._C")


def _core_cudnn(core: Any) -> Any:
    """cuDNN's version as ``torch.backends.cudnn.version()`` gives it; a compiled/runtime mismatch
    (which that call raises on) is left to the full import."""
    if not getattr(core, "_has_cudnn", False):
        return None
    cudnn = core._cudnn
    compiled, runtime = tuple(cudnn.getCompileVersion()), tuple(cudnn.getRuntimeVersion())
    strict = runtime[0] < 7 or not getattr(cudnn, "is_cuda", True)  # torch's own rule
    if runtime[0] != compiled[0] or (
        runtime[1] != compiled[1] if strict else runtime[1] < compiled[1]
    ):
        raise CoreNotEnough(f"cuDNN compiled {compiled} differs from the runtime {runtime}")
    return cudnn.getVersionInt()


def _core_nccl(core: Any) -> str:
    """NCCL's version as ``torch.cuda.nccl.version()`` gives it, joined with dots."""
    raw = int(core._nccl_version())
    parts: list[Any] = [raw >> 32, (raw >> 16) & 65535, raw & 65535]
    suffix = core._nccl_version_suffix().decode("utf-8")
    return ".".join(str(p) for p in [*parts, suffix] if p != "")


def probe_torch_core(version: Any, core: Any) -> dict[str, Any]:
    """torch's build facts from its version module and native core (:func:`_torch_core`)."""
    facts: dict[str, Any] = {"version": str(version.__version__), "imported": "torch._C"}
    facts["cuda"] = getattr(version, "cuda", None)
    facts["hip"] = getattr(version, "hip", None)
    facts["cudnn"] = _core_cudnn(core)
    count = getattr(core, "_cuda_getDeviceCount", None)  # absent in a CPU build
    if facts["cuda"] and hasattr(core, "_nccl_version"):
        facts["nccl"] = _safe(_core_nccl, core)
    devices = _safe(count) if count is not None else 0
    if not isinstance(devices, int) or devices > 0:
        raise CoreNotEnough("CUDA answered with devices: the full import describes them")
    flags = getattr(core, "_cuda_getArchFlags", None)  # torch.cuda.get_arch_list()'s source
    raw = _safe(flags) if flags is not None else None
    facts["arch_list"] = raw.split() if isinstance(raw, str) else [] if raw is None else raw
    facts["cuda_available"] = False
    facts["device_count"] = 0
    facts["mps_built"] = bool(getattr(core, "_has_mps", False))
    mps = getattr(core, "_mps_is_available", None)
    facts["mps_available"] = _safe(mps) if mps is not None else False
    return facts


def _torch_core_facts() -> dict[str, Any] | None:
    loaded = _torch_core()
    return None if loaded is None else probe_torch_core(*loaded)


def probe_torch(full: bool = False) -> dict[str, Any]:
    """Build facts of the importable ``torch``.

    Args:
        full: run the complete ``import torch`` instead of loading only its core.
    """
    if not full:
        core: dict[str, Any] | None = _core_only(_torch_core_facts)
        if core is not None:
            return core
    import torch

    facts: dict[str, Any] = {"version": str(getattr(torch, "__version__", "")), "imported": "torch"}
    version_mod = getattr(torch, "version", None)
    facts["cuda"] = getattr(version_mod, "cuda", None)
    facts["hip"] = getattr(version_mod, "hip", None)
    backends = getattr(torch, "backends", None)
    cudnn = getattr(backends, "cudnn", None)
    facts["cudnn"] = _safe(cudnn.version) if cudnn is not None else None
    cuda = getattr(torch, "cuda", None)
    nccl = getattr(cuda, "nccl", None)
    if facts["cuda"] and nccl is not None:  # a CPU build has no NCCL to ask
        facts["nccl"] = _safe(lambda: ".".join(str(p) for p in nccl.version()))
    if cuda is not None:
        facts["arch_list"] = _safe(lambda: [str(a) for a in cuda.get_arch_list()])
        facts["cuda_available"] = _safe(cuda.is_available)
        facts["device_count"] = _safe(cuda.device_count)
    mps = getattr(backends, "mps", None)
    if mps is not None:
        facts["mps_built"] = _safe(mps.is_built)
        facts["mps_available"] = _safe(mps.is_available)
    return facts


def _tensorflow_core() -> Any:
    """Load TensorFlow's native core and device list without running ``tensorflow/__init__``.

    ``import tensorflow`` spends most of its seconds building the Python API tree, importing Keras
    and registering ml_dtypes' NumPy types (about 0.7 s alone); the native libraries load with
    ``tensorflow.python.pywrap_tfe`` (where an illegal-instruction crash or a CUDA ``dlopen``
    failure happens), which lists the physical devices as ``tf.config.list_physical_devices``
    does, and the build info is a generated module of constants. Returns None when this
    TensorFlow has no such layout (then the full import is used).
    """
    import types

    spec, dirs = _package_dirs("tensorflow")
    layout = (("python", "pywrap_tfe.py"), ("python", "platform", "build_info.py"))
    if not all(any(os.path.isfile(os.path.join(d, *f)) for d in dirs) for f in layout):
        return None
    for site in {os.path.dirname(d) for d in dirs}:
        plugins = os.path.join(site, "tensorflow-plugins")  # tensorflow/__init__ loads these
        if os.path.isdir(plugins) and os.listdir(plugins):
            raise CoreNotEnough(f"{plugins} holds pluggable devices, which the full import loads")
    _stub_package("tensorflow", spec, dirs)
    from tensorflow.python import pywrap_tfe
    from tensorflow.python.client import _pywrap_tf_session
    from tensorflow.python.platform import build_info

    version = str(_pywrap_tf_session.get_version())  # what tensorflow.__version__ reads

    def list_physical_devices(kind: str) -> list[Any]:
        names = [
            d.decode() if isinstance(d, bytes) else str(d)
            for d in pywrap_tfe.TF_ListPhysicalDevices()
        ]
        return [types.SimpleNamespace(name=n) for n in names if n.split(":")[1:2] == [kind]]

    return types.SimpleNamespace(
        __version__=version,
        config=types.SimpleNamespace(
            list_physical_devices=list_physical_devices, set_memory_growth=lambda d, on: None
        ),
        sysconfig=types.SimpleNamespace(get_build_info=lambda: dict(build_info.build_info)),
    )


def probe_tensorflow(full: bool = False) -> dict[str, Any]:
    """Build facts of the importable ``tensorflow``; never lets TF reserve GPU memory.

    Args:
        full: run the complete ``import tensorflow`` instead of loading only its core.
    """
    tf = None if full else _core_only(_tensorflow_core)
    imported = "tensorflow.python.pywrap_tfe"
    if tf is None:
        import tensorflow

        tf = tensorflow
        imported = "tensorflow"
    facts: dict[str, Any] = {"version": str(getattr(tf, "__version__", "")), "imported": imported}
    config = tf.config
    set_growth = getattr(config, "set_memory_growth", None)
    if set_growth is None:
        set_growth = config.experimental.set_memory_growth
    gpus = _safe(config.list_physical_devices, "GPU")
    if isinstance(gpus, list):
        for gpu in gpus:  # before any runtime init, so a later init cannot grab all memory
            _safe(set_growth, gpu, True)
        facts["gpus"] = [str(getattr(g, "name", g)) for g in gpus]
    else:
        facts["gpus"] = gpus
    info = _safe(tf.sysconfig.get_build_info)
    if isinstance(info, dict):
        facts["build_info"] = {
            str(k): v if isinstance(v, (bool, int)) else str(v) for k, v in info.items()
        }
    else:
        facts["build_info"] = info
    return facts


#: PyTorch's companion packages, probed after torch in the same worker.
TORCH_COMPANIONS = ("torchvision", "torchaudio")
#: Each companion's compiled extension, relative to its package directory (first match wins).
_EXTENSION_FILES: dict[str, tuple[str, ...]] = {
    "torchvision": (
        "_C.so",
        "_C.pyd",
        "_C.*.so",
        "_C_stable.so",
        "_C_stable.pyd",
    ),  # 0.29: stable ABI
    "torchaudio": ("lib/libtorchaudio.so", "lib/libtorchaudio.pyd", "lib/libtorchaudio.*.so"),
}


def _error_text(exc: BaseException) -> str:
    """``Type: message``, with the exceptions it was raised from (``torch.ops.load_library``
    wraps the loader's own error, which names the missing library, in a vaguer one)."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 4:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)[:2000]


def _cuda_from_number(value: int) -> str:
    """CUDA's version number (``12040``: 1000 x major + 10 x minor) as ``"12.4"``."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def _cuda_from_local_tag(version: str) -> Any:
    """The CUDA version named by a wheel's local version tag: ``+cu130`` -> ``"13.0"``,
    ``+cpu`` -> missing ``cpu_build``; other tags or none -> missing ``not_reported``."""
    tag = version.partition("+")[2]
    if tag.startswith("cu") and tag[2:].isdigit() and len(tag) >= 4:
        return f"{int(tag[2:-1])}.{tag[-1]}"
    if tag == "cpu":
        return {"missing": "cpu_build", "detail": f"version {version}"}
    if tag.startswith("rocm"):
        return {"missing": "rocm_build", "detail": f"version {version}"}
    return {"missing": "not_reported", "detail": f"version {version} names no CUDA build"}


def _companion_files(name: str, location: str) -> dict[str, Any]:
    """What can be read about an installed companion without importing it: the version from its
    ``version.py``, the distribution's ``torch`` requirement and all its requirements
    (:func:`requirements`), its compiled extension's path."""
    import glob

    facts: dict[str, Any] = {"location": location, "requirements": _safe(requirements, name)}
    try:
        with open(os.path.join(location, "version.py"), encoding="utf-8") as fh:
            m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", fh.read(), re.MULTILINE)
        if m:
            facts["version"] = m.group(1)
    except OSError:
        pass
    try:
        from importlib import metadata

        dist = metadata.distribution(name)
        facts.setdefault("version", dist.version)
        for req in dist.requires or []:
            m = re.match(r"\s*torch\b\s*\(?\s*([^;)]*)", req)
            if m and ";" not in req:
                facts["torch_requirement"] = m.group(1).strip() or "any"
    except Exception:  # no distribution metadata (a source tree on sys.path, a stand-in)
        facts.setdefault("torch_requirement", None)
    for pattern in _EXTENSION_FILES.get(name, ()):
        found = sorted(glob.glob(os.path.join(location, pattern)))
        if found:
            facts["extension_file"] = found[0]
            break
    return facts


def _load_attempt(torch: Any, path: str | None) -> str:
    """Load ``path`` with ``torch.ops.load_library`` and return the loader's error (the real
    reason behind "operator ... does not exist"), or what loading it showed."""
    if path is None:
        return "no compiled extension file was found in the package"
    try:
        torch.ops.load_library(path)
    except Exception as exc:
        return _error_text(exc)
    return f"{path} loads, but its operators are not registered"


def probe_companion(ops: TorchOps, name: str) -> dict[str, Any]:
    """Facts of one of torch's companions (``torchvision``, ``torchaudio``).

    Returns ``{"installed": False}`` when it cannot be found; otherwise ``installed``, ``location``,
    ``version`` (``__version__`` with its local tag, ``0.28.0+cu130``; from ``version.py`` when the
    import fails), ``torch_requirement`` (the distribution's ``Requires-Dist: torch``, ``==2.13.0``),
    ``imported`` and ``import_error``, ``extension_loaded`` (the compiled extension is loaded and,
    for torchvision, ``torchvision::nms`` is registered) and ``extension_error`` (the loader's own
    error text, from loading the extension file again when the package swallowed it),
    ``extension_file``, ``cuda`` (the CUDA version it was built for: ``version.cuda``, the
    extension's ``cuda_version()``, or the ``+cuXYZ`` tag), ``warnings`` and ``seconds``.
    """
    start = time.perf_counter()
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    if spec is None:
        return {"installed": False}
    dirs = list(spec.submodule_search_locations or [])
    location = dirs[0] if dirs else os.path.dirname(spec.origin or "")
    facts: dict[str, Any] = {"installed": True, **_companion_files(name, location)}
    wanted = os.environ.get(IMPORT_ENV, "").split(",")  # the parent asks for the import itself
    alone = _extension_alone if name == "torchvision" else _torchaudio_alone
    if name not in wanted and alone(ops, facts):
        facts["seconds"] = round(time.perf_counter() - start, 3)
        return facts
    if ops.core is not None:
        raise CoreNotEnough(f"{name} is probed by importing it, which needs the full torch import")
    torch = ops.torch
    os.environ.setdefault("TORCHVISION_WARN_WHEN_EXTENSION_LOADING_FAILS", "1")
    module: Any = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            module = importlib.import_module(name)
            facts["imported"] = True
        except Exception as exc:
            facts["imported"] = False
            facts["import_error"] = _error_text(exc)
        if module is not None:
            facts["version"] = str(getattr(module, "__version__", facts.get("version", "")))
        loaded, cuda = _extension_state(torch, name, module)
    facts["extension_loaded"] = loaded
    if loaded is not True:
        facts["extension_error"] = _load_attempt(torch, facts.get("extension_file"))
        if module is None and "import_error" in facts and "extension_file" not in facts:
            facts["extension_error"] = facts["import_error"]
    if cuda is None:
        cuda = _cuda_from_local_tag(str(facts.get("version", "")))
    facts["cuda"] = cuda
    facts["warnings"] = [f"{w.category.__name__}: {w.message}"[:500] for w in caught][:10]
    facts["seconds"] = round(time.perf_counter() - start, 3)
    return facts


class TorchOps:
    """What the companion probe asks of ``torch.ops``: load an operator library, look up an
    operator. With ``core`` (``torch._C`` loaded without ``torch/__init__``) it calls what
    ``torch.ops`` itself calls: ``ctypes.CDLL`` and ``torch._C._jit_get_operation``."""

    def __init__(self, torch: Any, core: Any = None) -> None:
        self.torch = torch
        self.core = core

    def load(self, path: str) -> None:
        if self.core is None:
            self.torch.ops.load_library(path)
        else:
            import ctypes

            ctypes.CDLL(path)

    def op(self, qualified: str) -> Any:
        """The operator ``namespace::name``, or None when it is not registered."""
        if self.core is None:
            namespace, _, name = qualified.partition("::")
            return getattr(getattr(self.torch.ops, namespace), name)
        found = self.core._jit_get_operation(qualified)
        return found[0] if isinstance(found, tuple) else found


def _extension_alone(ops: TorchOps, facts: dict[str, Any]) -> bool:
    """torchvision's facts from its compiled extension alone, as smoke's companion check does:
    ``torch.ops.load_library`` on ``_C``/``_C_stable``, ``torchvision::nms`` registered, and the
    CUDA it was built for from ``torchvision::_cuda_version`` (what ``torchvision.version.cuda``
    reads). ``import torchvision`` costs about 1.4 s (its ``ops`` import ``torch._dynamo``); this,
    milliseconds. True when it answered; on any failure the caller imports the package, whose
    error is what a user would see.
    """
    path = facts.get("extension_file")
    if not path or "version" not in facts:
        return False
    try:
        ops.load(path)
        if ops.op("torchvision::nms") is None:
            return False
        raw = ops.op("torchvision::_cuda_version")()
    except Exception:
        return False
    _answered_alone(facts, raw, "torchvision::_cuda_version()")
    return True


def _answered_alone(facts: dict[str, Any], raw: Any, asked: str) -> None:
    """Record a companion whose compiled extension answered for it (the package is not
    imported): loaded, and the CUDA it was built for from ``raw`` (what ``asked`` returned:
    CUDA's version number, or none for a CPU build), else from the ``+cuXYZ`` tag."""
    facts.update(imported=True, import_checked="extension_only", extension_loaded=True, warnings=[])
    if isinstance(raw, int) and raw > 0:
        facts["cuda"] = _cuda_from_number(raw)
        return
    local = _cuda_from_local_tag(str(facts["version"]))
    facts["cuda"] = (
        local if isinstance(local, str) else {"missing": "cpu_build", "detail": f"{asked} is {raw}"}
    )


def _torchaudio_alone(ops: TorchOps, facts: dict[str, Any]) -> bool:
    """torchaudio's facts from its libraries alone, where torch itself was not imported: what its
    ``_extension`` does (load ``lib/_torchaudio*.so``, then ``lib/libtorchaudio*.so``; ask
    ``_torchaudio::cuda_version``), without the import. A CUDA major that differs from torch's
    (``_check_cuda_version`` raises then), or anything that does not answer, is left to the
    import (False)."""
    import glob

    if ops.core is None:
        return False
    lib = os.path.join(str(facts.get("location", "")), "lib")
    found = [
        sorted(glob.glob(os.path.join(lib, f"{stem}*.so")))
        for stem in ("_torchaudio", "libtorchaudio")
    ]
    if not all(found) or "version" not in facts:
        return False
    try:
        for paths in found:
            ops.load(paths[0])
        op = ops.op("_torchaudio::cuda_version")
        raw = op() if op is not None else None
    except Exception:
        return False
    torch_cuda = getattr(sys.modules.get("torch.version"), "cuda", None)
    if op is None or (
        isinstance(raw, int) and torch_cuda and raw // 1000 != int(str(torch_cuda).split(".")[0])
    ):
        return False
    _answered_alone(facts, raw, "_torchaudio::cuda_version()")
    return True


def _extension_state(torch: Any, name: str, module: Any) -> tuple[Any, Any]:
    """(extension loaded: bool or a missing marker, CUDA version of the build or None)."""
    if module is None:
        return False, None
    cuda: Any = None
    if name == "torchvision":
        has_ops = _safe(lambda: bool(module.extension._has_ops()))
        if has_ops is not True:
            return has_ops if isinstance(has_ops, dict) else False, None
        registered = _safe(lambda: torch.ops.torchvision.nms is not None)
        if registered is not True:
            return False, None
        raw = getattr(getattr(module, "version", None), "cuda", None)
        if isinstance(raw, int) and raw > 0:
            cuda = _cuda_from_number(raw)
        elif isinstance(raw, str) and raw:
            cuda = raw
        return True, cuda
    ext = getattr(module, "_extension", None)
    available = getattr(ext, "_IS_TORCHAUDIO_EXT_AVAILABLE", None)
    if not isinstance(available, bool):
        return {"missing": "not_reported", "detail": "no torchaudio._extension flag"}, None
    if available:

        def cuda_version() -> Any:  # the attribute lookups may raise too
            return module.lib._torchaudio.cuda_version()

        raw = _safe(cuda_version)
        if isinstance(raw, int) and raw > 0:
            cuda = _cuda_from_number(raw)
        elif raw is None:
            cuda = {"missing": "cpu_build", "detail": "cuda_version() is None"}
    return available, cuda


def probe_companions(result: dict[str, Any]) -> None:
    """Probe torch's companions into ``result["facts"]["companions"]``.

    Before each companion the result so far is written as a marker line with that companion
    ``pending`` (its files read, not yet imported): when its import crashes or hangs the worker,
    the parent still has torch's facts and knows which companion did it.
    """
    import torch

    core = sys.modules.get("torch._C") if result["facts"].get("imported") == "torch._C" else None
    ops = TorchOps(torch, core)
    found: dict[str, Any] = {}
    result["facts"]["companions"] = found
    for name in TORCH_COMPANIONS:
        spec = _safe(importlib.util.find_spec, name)
        if spec is None or isinstance(spec, dict):
            found[name] = {"installed": False}
            continue
        dirs = list(spec.submodule_search_locations or [])
        location = dirs[0] if dirs else os.path.dirname(spec.origin or "")
        found[name] = {"installed": True, "pending": True, **_companion_files(name, location)}
        write_marker(result)
        found[name] = probe_companion(ops, name)


def write_marker(result: dict[str, Any]) -> None:
    """Write ``result`` as a marker line (the parent reads the last one)."""
    sys.stdout.flush()
    sys.stdout.write("\n" + MARKER + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


PROBES = ("torch", "tensorflow")
#: The distributions that install each framework's package, in the order they are looked for.
DISTRIBUTIONS = {
    "torch": ("torch",),
    "tensorflow": (
        "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
        "tf-nightly", "tf-nightly-cpu",
    ),
}  # fmt: skip
#: What the parent's ``--full`` probe receives: why the core alone did not answer.
CORE_ERROR_ENV = "DLSETUP_PROBE_CORE_ERROR"
#: Companions the parent wants imported rather than checked through their extension alone
#: (comma-separated): their requirements are not met, so the import may fail above the extension.
IMPORT_ENV = "DLSETUP_PROBE_IMPORT"


def requirements(name: str) -> dict[str, Any] | None:
    """The framework distribution's ``Requires-Dist`` lines and each one's installed version
    (None: not installed), for the parent to check as ``pip check`` does (with ``packaging``):
    a core load does not import them, so an unmet one sends the probe to the full import.
    Requirements of an extra (``extra == "and-cuda"``) are not looked up."""
    from importlib import metadata

    for dist_name in DISTRIBUTIONS.get(name, (name,)):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        requires = [str(r) for r in dist.requires or []]
        installed: dict[str, str | None] = {}
        for req in requires:
            found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if found is None or re.search(r"\bextra\s*==", req):
                continue
            try:
                installed[found.group(1)] = metadata.version(found.group(1))
            except metadata.PackageNotFoundError:
                installed[found.group(1)] = None
        return {"distribution": dist_name, "requires": requires, "installed": installed}
    return None


def marker_environment() -> dict[str, str]:
    """PEP 508's marker variables of this interpreter (the parent evaluates markers with them)."""
    return {
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "python_full_version": platform.python_version(),
        "sys_platform": sys.platform,
        "platform_machine": platform.machine(),
        "platform_system": platform.system(),
        "platform_python_implementation": platform.python_implementation(),
        "implementation_name": sys.implementation.name,
        "os_name": os.name,
    }


def _probe(name: str, full: bool, result: dict[str, Any]) -> None:
    """Fill ``result`` with ``name``'s facts: status ``ok``, ``import_failed`` (the import's error),
    or ``needs_full`` (the core load answered with something only the full import explains)."""
    try:
        result["facts"] = probe_torch(full) if name == "torch" else probe_tensorflow(full)
        result["status"] = "ok"
    except CoreNotEnough as exc:
        result["status"] = "needs_full"
        result["detail"] = str(exc)
    except BaseException as exc:  # ImportError, OSError from dlopen, SystemExit...
        result["status"] = "import_failed"
        result["detail"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=6)[-4000:]
    result["markers"] = marker_environment()
    if result["status"] == "ok" and not full and result["facts"]["imported"] != name:
        result["requirements"] = _safe(requirements, name)
    if full and os.environ.get(CORE_ERROR_ENV) and result["status"] == "ok":
        result["facts"]["core_error"] = os.environ[CORE_ERROR_ENV][:500]


def main(argv: list[str]) -> int:
    """Probe the framework named in ``argv[1]`` and print the marker.

    Without ``--full`` the framework's native core is loaded alone where its layout allows
    (``torch._C``, TensorFlow's ``pywrap_tfe``); ``--full`` runs the complete import.
    """
    name = argv[1] if len(argv) > 1 else ""
    full = "--full" in argv[2:]
    result: dict[str, Any] = {
        "framework": name,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": sys.platform,
    }
    if name not in PROBES:
        result["status"] = "error"
        result["detail"] = f"unknown framework {name!r}"
    elif importlib.util.find_spec(name) is None:
        result["status"] = "not_installed"
    else:
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _probe(name, full, result)
        result["import_seconds"] = round(time.perf_counter() - start, 3)
        result["warnings"] = [f"{w.category.__name__}: {w.message}"[:500] for w in caught][:20]
        if name == "torch" and result["status"] == "ok":
            try:
                probe_companions(result)  # torchvision, torchaudio: after torch's own facts
            except CoreNotEnough as exc:
                result["status"] = "needs_full"
                result["detail"] = str(exc)
    write_marker(result)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: after ``import torch`` finalising its thousands of modules
    # and native objects takes about 0.5 s, a third of the probe, and the facts are already out.
    os._exit(code)
