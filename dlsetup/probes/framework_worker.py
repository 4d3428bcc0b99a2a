"""Framework probe worker: runs INSIDE the target interpreter, as a script, by file path.

    python /abs/path/framework_worker.py torch|tensorflow [--full]

Imports only the standard library and the framework (the target env need not have dlsetup).
Prints one line ``DLSETUP_PROBE_JSON: {...}`` on stdout, last; anything else the framework prints
(stdout or stderr) is left to the parent, which reads library-load failures from stderr.
It asks only for build facts and device lists: no tensor, no allocation, no CUDA context.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
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


def probe_torch() -> dict[str, Any]:
    """Build facts of the importable ``torch``."""
    import torch

    facts: dict[str, Any] = {"version": str(getattr(torch, "__version__", "")), "imported": "torch"}
    version_mod = getattr(torch, "version", None)
    facts["cuda"] = getattr(version_mod, "cuda", None)
    facts["hip"] = getattr(version_mod, "hip", None)
    backends = getattr(torch, "backends", None)
    cudnn = getattr(backends, "cudnn", None)
    facts["cudnn"] = _safe(cudnn.version) if cudnn is not None else None
    cuda = getattr(torch, "cuda", None)
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
    """Load TensorFlow's native core and its config API without running ``tensorflow/__init__``.

    ``import tensorflow`` spends most of its seconds building the Python API tree and importing
    Keras; the GPU facts live in ``tensorflow.python.framework.config``, whose import loads the
    native libraries (where an illegal-instruction crash or a CUDA ``dlopen`` failure happens).
    Returns None when this TensorFlow has no such layout (then the full import is used).
    """
    import types

    spec = importlib.util.find_spec("tensorflow")
    dirs = list(spec.submodule_search_locations or []) if spec is not None else []
    layout = ("python", "framework", "config.py")
    if not any(os.path.isfile(os.path.join(d, *layout)) for d in dirs):
        return None
    package = types.ModuleType("tensorflow")
    package.__path__ = dirs
    package.__spec__ = spec
    package.__file__ = spec.origin if spec is not None else None
    sys.modules["tensorflow"] = package
    from tensorflow.python.framework import config, versions
    from tensorflow.python.platform import sysconfig

    return types.SimpleNamespace(
        __version__=versions.__version__, config=config, sysconfig=sysconfig
    )


def probe_tensorflow(full: bool = False) -> dict[str, Any]:
    """Build facts of the importable ``tensorflow``; never lets TF reserve GPU memory.

    Args:
        full: run the complete ``import tensorflow`` instead of loading only its core.
    """
    tf: Any = None
    core_error = ""
    if not full:
        try:
            tf = _tensorflow_core()
        except Exception as exc:  # a layout this shortcut does not know: use the full import
            core_error = f"{type(exc).__name__}: {exc}"
            for module in [
                m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")
            ]:
                del sys.modules[module]
    imported = "tensorflow.python.framework.config"
    if tf is None:
        import tensorflow

        tf = tensorflow
        imported = "tensorflow"
    facts: dict[str, Any] = {"version": str(getattr(tf, "__version__", "")), "imported": imported}
    if core_error:
        facts["core_error"] = core_error[:500]
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


PROBES = ("torch", "tensorflow")


def main(argv: list[str]) -> int:
    """Probe the framework named in ``argv[1]`` (``--full``: complete import) and print the marker."""
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
            try:
                result["facts"] = probe_torch() if name == "torch" else probe_tensorflow(full)
                result["status"] = "ok"
            except BaseException as exc:  # ImportError, OSError from dlopen, SystemExit...
                result["status"] = "import_failed"
                result["detail"] = f"{type(exc).__name__}: {exc}"
                result["traceback"] = traceback.format_exc(limit=6)[-4000:]
        result["import_seconds"] = round(time.perf_counter() - start, 3)
        result["warnings"] = [f"{w.category.__name__}: {w.message}"[:500] for w in caught][:20]
    sys.stdout.flush()
    sys.stdout.write("\n" + MARKER + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: after ``import torch`` finalising its thousands of modules
    # and native objects takes about 0.5 s, a third of the probe, and the facts are already out.
    os._exit(code)
