"""Installed frameworks (torch, tensorflow) as the target interpreter sees them.

Each framework is probed by :mod:`dlsetup.probes.framework_worker`, run as a script in its own
subprocess of the target interpreter (``--python PATH``, default this one), both at once, each with
a timeout. A framework whose import crashes the interpreter (a signal, a nonzero exit) or hangs
becomes a fact (``status`` ``crashed`` / ``timeout``), never a crash or hang of doctor. Library
loading failures are read from the worker's stderr and from the import error text.

Where the layout allows, a worker loads only the framework's native core (``torch._C`` with
``torch/version.py`` on Linux without a GPU device node; TensorFlow's ``pywrap_tfe`` with its
generated ``build_info``): that load is where a missing library, an undefined symbol or an illegal
instruction shows, and it answers the same build facts and device list in a fraction of the time.
Whatever only the full import can explain goes to it, in a second worker within the same timeout:
the core raised, CUDA reported devices, cuDNN's compiled and runtime versions differ, a companion
must be imported, or the framework's ``Requires-Dist`` are not met (:func:`core_not_enough`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dlsetup.children import Child, deferred_stop_signals
from dlsetup.children import start as start_child
from dlsetup.facts import Maybe, Missing
from dlsetup.interpreter import cannot_run, require_interpreter

FRAMEWORKS: tuple[str, ...] = ("torch", "tensorflow")
WORKER = Path(__file__).with_name("framework_worker.py")

#: CUDA library load failures, as TF's and torch's loaders word them.
_LIB_PATTERNS = (
    re.compile(r"Could not load dynamic library '([^']+)'"),
    re.compile(r"([\w.+\-]+\.so(?:\.[\w.]+)?): cannot open shared object file"),
    re.compile(r"Error loading \"([^\"]+\.dll)\""),
    re.compile(r"Could not find (?:the )?(?:DLL|library)[^'\"]*['\"]([^'\"]+)['\"]"),
)
_DLOPEN_MARKER = "Cannot dlopen some GPU libraries"


@dataclass(frozen=True)
class CompanionBuild:
    """One of torch's companions (torchvision, torchaudio) as the target interpreter sees it.

    Probed after torch in torch's worker (``framework_worker.probe_companion``); a companion that
    is not installed is not a ``CompanionBuild`` but ``Missing("not_installed")``.

    Attributes:
        name: ``torchvision`` or ``torchaudio``.
        status: ``ok`` (imports and its compiled extension is loaded) | ``import_failed`` (``import``
            raised, see ``import_error``) | ``extension_failed`` (imports, but the extension is not
            loaded, see ``extension_error``) | ``crashed`` / ``timeout`` (its import killed or hung
            the probe; torch's own facts were saved before, see ``detail``).
        detail: the probe's end in words for ``crashed``/``timeout``; "" otherwise.
        version: ``__version__`` with its local tag (``"0.28.0+cu130"``); read from the package's
            ``version.py`` (or its distribution metadata) when the import fails.
        location: the package directory.
        torch_requirement: the distribution's ``Requires-Dist: torch`` (``"==2.13.0"``, the torch
            release it was built for); Missing("not_reported") without metadata.
        imported: ``import NAME`` succeeded; for torchvision, also when its compiled extension
            loaded alone and registered ``torchvision::nms`` (the probe then does not import the
            package: 1.4 s saved; it imports it only when the extension does not answer).
        import_error: its exception text (``"RuntimeError: operator torchvision::nms does not
            exist"``), "" when it imported.
        extension_loaded: the compiled extension is loaded (torchvision: ``extension._has_ops()``
            and ``torch.ops.torchvision.nms`` is registered; torchaudio:
            ``_extension._IS_TORCHAUDIO_EXT_AVAILABLE``); False when the import failed;
            Missing("not_reported") when the package does not say.
        extension_error: why it is not loaded, in the loader's words, from loading the extension
            file again with ``torch.ops.load_library`` (``"OSError: ... <- OSError: libc10_cuda.so:
            cannot open shared object file"``); "" when loaded.
        extension_file: the compiled extension's path (``torchvision/_C.so``,
            ``torchaudio/lib/libtorchaudio.so``), or Missing("not_found").
        cuda: the CUDA version it was built for (``"13.0"``): ``torchvision.version.cuda``,
            ``torchaudio.lib._torchaudio.cuda_version()``, else the ``+cuXYZ`` version tag;
            Missing("cpu_build") for ``+cpu``, Missing("rocm_build"), Missing("not_reported").
        warnings: Python warnings raised by its import (torchvision's "Failed to load '_C'
            extension ..." among them).
        elapsed_s: seconds its import and checks took.
    """

    name: str
    status: str
    detail: str
    version: Maybe[str]
    location: str
    torch_requirement: Maybe[str]
    imported: bool
    import_error: str
    extension_loaded: Maybe[bool]
    extension_error: str
    extension_file: Maybe[str]
    cuda: Maybe[str]
    warnings: tuple[str, ...] = ()
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class TorchBuild:
    """What the installed torch was built with and what it sees.

    Attributes:
        cuda: the CUDA version of the build (``"12.4"``); Missing("cpu_build") for a CPU wheel.
        cudnn: cuDNN version as torch reports it (``"90100"``), or Missing.
        nccl: NCCL version of a CUDA build (``"2.27.5"``, ``torch.cuda.nccl.version()``), or
            Missing("not_built") (CPU builds, builds without NCCL).
        hip: ROCm/HIP version of a ROCm build, or Missing("not_rocm").
        arch_list: ``torch.cuda.get_arch_list()`` (``["sm_80", "sm_90", "compute_90"]``).
        cuda_available: ``torch.cuda.is_available()`` (``cudaGetDeviceCount``: initialises the
            driver API but creates no context and allocates nothing on a GPU).
        device_count: ``torch.cuda.device_count()``.
        mps_built / mps_available: Apple MPS backend.
        torchvision / torchaudio: the companion's :class:`CompanionBuild`, Missing("not_installed"),
            or Missing("not_probed") when the probe ended before it.
    """

    cuda: Maybe[str]
    cudnn: Maybe[str]
    hip: Maybe[str]
    arch_list: tuple[str, ...]
    cuda_available: Maybe[bool]
    device_count: Maybe[int]
    mps_built: Maybe[bool]
    mps_available: Maybe[bool]
    torchvision: Maybe[CompanionBuild] = Missing("not_probed")
    torchaudio: Maybe[CompanionBuild] = Missing("not_probed")
    nccl: Maybe[str] = Missing("not_built")


@dataclass(frozen=True)
class TensorflowBuild:
    """What the installed TensorFlow was built with and what it sees.

    Attributes:
        is_cuda_build: ``get_build_info()["is_cuda_build"]``.
        cuda_version / cudnn_version: from the build info, or Missing("cpu_build").
        compute_capabilities: ``["sm_60", ..., "compute_90"]`` of a CUDA build.
        gpus: ``tf.config.list_physical_devices("GPU")`` names.
        build_info: the whole build-info mapping, values as text.
    """

    is_cuda_build: bool
    cuda_version: Maybe[str]
    cudnn_version: Maybe[str]
    compute_capabilities: tuple[str, ...]
    gpus: Maybe[tuple[str, ...]]
    build_info: dict[str, str]


@dataclass(frozen=True)
class FrameworkProbe:
    """The outcome of probing one installed framework.

    Attributes:
        name: ``torch`` or ``tensorflow``.
        status: ``ok`` | ``import_failed`` (an exception on import) | ``crashed`` (the interpreter
            died: a signal or a nonzero exit) | ``timeout`` (killed after ``timeout_s``).
        detail: the import error, the signal, or the timeout, in words.
        version: the framework version, when the import got that far.
        elapsed_s: wall seconds the probe took.
        exit_code: the worker's exit status (negative: killed by that signal).
        failed_libraries: CUDA/cuDNN libraries the framework could not load.
        messages: Python warnings raised during import, and the framework's own
            "cannot load" lines.
        imported: the module the probe imported: ``torch``, ``tensorflow`` (``--full-import``)
            or ``tensorflow.python.framework.config`` (TensorFlow's native core and device API,
            without the Python API tree and Keras: seconds faster, same GPU facts).
        torch / tensorflow: the build facts of that framework (Missing for the other one or when
            the import failed).
    """

    name: str
    status: str
    detail: str
    version: Maybe[str]
    elapsed_s: float
    exit_code: Maybe[int]
    failed_libraries: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    imported: str = ""
    torch: Maybe[TorchBuild] = Missing("not_probed")
    tensorflow: Maybe[TensorflowBuild] = Missing("not_probed")


@dataclass(frozen=True)
class FrameworksFacts:
    """Frameworks in the target interpreter.

    Attributes:
        python_executable: the interpreter probed.
        python_version: its version (``"3.11.7"``), or Missing when no worker reported it.
        platform: its ``sys.platform``.
        torch / tensorflow: a :class:`FrameworkProbe`, Missing("not_installed"), or
            Missing("skipped") with ``--no-frameworks``.
    """

    python_executable: str
    python_version: Maybe[str]
    platform: Maybe[str]
    torch: Maybe[FrameworkProbe] = Missing("skipped")
    tensorflow: Maybe[FrameworkProbe] = Missing("skipped")
    timeout_s: float = 0.0


def skipped(python: str | None = None) -> FrameworksFacts:
    """Facts for ``--no-frameworks``."""
    return FrameworksFacts(
        python_executable=python or sys.executable,
        python_version=Missing("skipped"),
        platform=Missing("skipped"),
    )


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # never let TF reserve GPU memory
    # Out-of-tree accelerator plugins (torch_npu, HPU, ...) are not what doctor probes; skipping
    # their entry-point scan makes import torch faster.
    env.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


class FrameworkRun:
    """Framework probes started in the background; :meth:`collect` waits for them.

    Args:
        python: the target interpreter (default: this one).
        timeout: seconds each probe may take, counted from :meth:`start`.
        frameworks: which frameworks to probe.
        env: the workers' environment (default: this process's, plus the no-GPU-memory flags).
        full_import: run the complete imports rather than loading the frameworks' cores.
    """

    def __init__(
        self,
        python: str | None = None,
        timeout: float = 60.0,
        frameworks: tuple[str, ...] = FRAMEWORKS,
        env: Mapping[str, str] | None = None,
        full_import: bool = False,
    ) -> None:
        self.python = python or sys.executable
        self.full_import = full_import
        self.timeout = timeout
        self.frameworks = frameworks
        self.env = dict(env) if env is not None else _worker_env()
        self._procs: dict[str, Child] = {}
        self._files: dict[str, tuple[IO[bytes], IO[bytes]]] = {}
        self._started = 0.0

    def start(self) -> FrameworkRun:
        """Start one worker per framework (returns at once).

        Ctrl-C or SIGTERM while the workers start is held back until each started one is
        recorded, then every one is ended before the interrupt goes on.

        Raises:
            MissingToolError: the interpreter does not exist or cannot run.
        """
        require_interpreter(self.python)
        self._started = time.perf_counter()
        try:
            for name in self.frameworks:
                with deferred_stop_signals():
                    self._procs[name] = self._spawn(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, core_error: str = "", imports: tuple[str, ...] = ()) -> Child:
        """Start ``name``'s worker; with ``core_error`` (why its core alone did not answer) or
        ``imports`` (companions to import, not only load their extension), the full import."""
        # The output goes to files, not pipes: a helper the import forks may keep its copy of
        # stdout open after the worker has gone, and a reader waiting for the end of a pipe would
        # wait for that helper, past any timeout.
        import tempfile  # here, not at the top: doctor --no-frameworks never starts a worker

        from dlsetup.probes.framework_worker import CORE_ERROR_ENV, IMPORT_ENV

        full = self.full_import or bool(core_error) or bool(imports)
        env = dict(self.env)
        if core_error:
            env[CORE_ERROR_ENV] = core_error
        if imports:
            env[IMPORT_ENV] = ",".join(imports)
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        try:
            proc = start_child(
                [self.python, str(WORKER), name, *(["--full"] if full else [])],
                stdout=out,
                stderr=err,
                env=env,
            )
        except OSError as exc:
            out.close()
            err.close()
            raise cannot_run(self.python, exc) from exc
        self._files[name] = (out, err)
        return proc

    def _wait(self, name: str) -> tuple[bytes, bytes, int | None, bool]:
        proc = self._procs[name]
        remaining = max(0.0, self.timeout - (time.perf_counter() - self._started))
        timed_out = proc.wait(remaining) is None
        # The whole group goes, also after a normal exit: nothing the import started outlives
        # the probe.
        code = proc.stop()
        out, err = self._files.pop(name)
        try:
            return _read_all(out), _read_all(err), code, timed_out
        finally:
            out.close()
            err.close()

    def stop(self) -> None:
        """End every worker still running, and what it started (on Ctrl-C or an error).

        The workers lead their own process groups, so a terminal's Ctrl-C does not reach them:
        without this a hung import would outlive doctor.
        """
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()

    def _wait_all(self, names: tuple[str, ...]) -> dict[str, tuple[bytes, bytes, int | None, bool]]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = {name: pool.submit(self._wait, name) for name in names}
            try:
                return {name: f.result() for name, f in futures.items()}
            except BaseException:  # Ctrl-C, SIGTERM: end the workers, so the waits return at once
                with deferred_stop_signals():
                    self.stop()
                raise

    def collect(self) -> FrameworksFacts:
        """Wait for every worker (up to the timeout) and turn their output into facts."""
        raw = self._wait_all(tuple(self._procs))
        again: dict[str, tuple[str, tuple[str, ...]]] = {}
        for name, got in raw.items():
            payload = _payload(got[0])
            why, imports = core_not_enough(payload), companions_to_import(payload)
            if why or imports:
                again[name] = (why, imports)
        if again:  # only the full import answers: probe those again, within the same timeout
            try:
                for name, (why, imports) in again.items():
                    with deferred_stop_signals():
                        self._procs[name] = self._spawn(name, why, imports)
            except BaseException:
                self.stop()
                raise
            raw.update(self._wait_all(tuple(again)))
        elapsed = time.perf_counter() - self._started
        results: dict[str, Maybe[FrameworkProbe]] = {}
        python_version: Maybe[str] = Missing("not_reported")
        plat: Maybe[str] = Missing("not_reported")
        for name, (out, err, code, timed_out) in raw.items():
            payload = _payload(out)
            if payload is not None:
                python_version = str(payload.get("python", python_version))
                plat = str(payload.get("platform", plat))
            results[name] = _to_probe(
                name,
                payload,
                err=err,
                code=code,
                timed_out=timed_out,
                elapsed=elapsed,
                timeout=self.timeout,
            )
        return FrameworksFacts(
            python_executable=self.python,
            python_version=python_version,
            platform=plat,
            torch=results.get("torch", Missing("skipped")),
            tensorflow=results.get("tensorflow", Missing("skipped")),
            timeout_s=self.timeout,
        )


def core_not_enough(payload: dict[str, Any] | None) -> str:
    """Why a worker's core-only answer needs the full import ("" when it does not): the worker
    said so (``needs_full``), or the framework's requirements are not met (a core load does not
    import them, the full import does: a protobuf or ml_dtypes too old for TensorFlow shows only
    there)."""
    if payload is None:
        return ""
    if payload.get("status") == "needs_full":
        return str(payload.get("detail") or "the core did not answer")[:500]
    unmet = unmet_requirements(payload.get("requirements"), payload.get("markers"))
    if unmet:
        return ("its requirements are not met: " + "; ".join(unmet))[:500]
    return ""


def companions_to_import(payload: dict[str, Any] | None) -> tuple[str, ...]:
    """torch's companions checked through their extension alone (or not yet checked: the core
    stopped before them) while their own requirements are not met (a torchvision without Pillow
    loads its extension, but ``import torchvision`` fails): the second probe imports them, and
    their import error is reported."""
    facts = payload.get("facts") if isinstance(payload, dict) else None
    companions = facts.get("companions") if isinstance(facts, dict) else None
    if not isinstance(companions, dict):
        return ()
    markers = payload.get("markers") if isinstance(payload, dict) else None
    return tuple(
        name
        for name, comp in companions.items()
        if isinstance(comp, dict)
        and (comp.get("import_checked") == "extension_only" or comp.get("pending"))
        and unmet_requirements(comp.get("requirements"), markers)
    )


def unmet_requirements(requirements: Any, markers: Any) -> list[str]:
    """The ``Requires-Dist`` lines a worker reported (:func:`framework_worker.requirements`) that
    its interpreter does not satisfy, as ``pip check`` judges them: ``"protobuf<8,>=6.31.1
    (5.29.3 installed)"``, ``"ml-dtypes>=0.5.1 (not installed)"``. Markers are evaluated with the
    target interpreter's variables (``markers``), extras as not requested."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if not isinstance(requirements, dict):
        return []
    raw_installed = requirements.get("installed")
    installed = {
        canonicalize_name(str(k)): v
        for k, v in (raw_installed.items() if isinstance(raw_installed, dict) else ())
    }
    env = {str(k): str(v) for k, v in markers.items()} if isinstance(markers, dict) else {}
    unmet: list[str] = []
    for line in requirements.get("requires") or ():
        try:
            req = Requirement(str(line))
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
        except (InvalidRequirement, ValueError):
            continue
        name = canonicalize_name(req.name)
        if name not in installed:
            continue  # not looked up by the worker
        have = installed[name]
        if have is None:
            unmet.append(f"{req.name}{req.specifier} (not installed)")
        elif req.specifier and not req.specifier.contains(str(have), prereleases=True):
            unmet.append(f"{req.name}{req.specifier} ({have} installed)")
    return unmet


def _read_all(fh: IO[bytes]) -> bytes:
    fh.seek(0)
    return fh.read()


def _payload(out: bytes) -> dict[str, Any] | None:
    # The worker's own constant (a stdlib-only module, imported only when a worker ran).
    from dlsetup.probes.framework_worker import MARKER

    text = out.decode("utf-8", errors="replace")
    for line in reversed(text.splitlines()):
        if line.startswith(MARKER):
            try:
                loaded = json.loads(line[len(MARKER) :])
            except json.JSONDecodeError:
                return None
            return loaded if isinstance(loaded, dict) else None
    return None


def failed_libraries(*texts: str) -> tuple[str, ...]:
    """CUDA library names a loader said it could not load, in order of appearance."""
    found: list[str] = []
    for text in texts:
        for pattern in _LIB_PATTERNS:
            for m in pattern.finditer(text):
                name = m.group(1).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
                if name not in found:
                    found.append(name)
    return tuple(found)


def _loader_lines(text: str) -> tuple[str, ...]:
    keys = ("Could not load dynamic library", _DLOPEN_MARKER, "cannot open shared object file")
    lines = [line.strip()[:300] for line in text.splitlines() if any(k in line for k in keys)]
    return tuple(dict.fromkeys(lines))[:10]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name} ({-code})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _reported_missing(value: Any, default: str = "not_reported") -> Missing:
    """The worker's ``{"missing": reason, "detail": ...}`` marker, or Missing(``default``)."""
    if isinstance(value, dict) and "missing" in value:
        return Missing(str(value["missing"]), str(value.get("detail", "")))
    return Missing(default)


def _maybe_str(value: Any, reason: str = "not_reported") -> Maybe[str]:
    if value is None or (isinstance(value, dict) and "missing" in value):
        return _reported_missing(value, reason)
    return str(value)


def _maybe_bool(value: Any) -> Maybe[bool]:
    return value if isinstance(value, bool) else _reported_missing(value)


def _maybe_int(value: Any) -> Maybe[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _reported_missing(value)


def _str_list(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


#: torch's companions, in the order the worker probes them.
COMPANIONS: tuple[str, ...] = ("torchvision", "torchaudio")


def _companion(name: str, raw: Any, ended: Missing) -> Maybe[CompanionBuild]:
    """A companion's facts from the worker; ``ended`` says how the worker ended (for a companion
    still ``pending``, whose import crashed or hung it)."""
    if not isinstance(raw, dict):
        return Missing("not_probed", ended.detail)
    if not raw.get("installed"):
        return Missing("not_installed", f"{name} is not installed")
    ext_file = raw.get("extension_file")
    common: dict[str, Any] = {
        "name": name,
        "version": _maybe_str(raw.get("version")),
        "location": str(raw.get("location", "")),
        "torch_requirement": _maybe_str(raw.get("torch_requirement")),
        "extension_file": str(ext_file) if ext_file else Missing("not_found"),
    }
    if raw.get("pending"):
        return CompanionBuild(
            status=ended.reason,
            detail=f"importing {name} {ended.detail}",
            imported=False,
            import_error="",
            extension_loaded=Missing(ended.reason),
            extension_error="",
            cuda=_maybe_str(None, ended.reason),
            **common,
        )
    imported = raw.get("imported") is True
    loaded = _maybe_bool(raw.get("extension_loaded"))
    status = "import_failed" if not imported else "extension_failed" if loaded is False else "ok"
    return CompanionBuild(
        status=status,
        detail="",
        imported=imported,
        import_error=str(raw.get("import_error", "")),
        extension_loaded=loaded,
        extension_error="" if loaded is True else str(raw.get("extension_error", "")),
        cuda=_maybe_str(raw.get("cuda")),
        warnings=_str_list(raw.get("warnings")),
        elapsed_s=float(raw.get("seconds", 0.0)),
        **common,
    )


def _pending_companion(payload: dict[str, Any] | None) -> bool:
    """Whether the worker ended while one of torch's companions was being imported."""
    facts = payload.get("facts") if payload is not None else None
    found = facts.get("companions") if isinstance(facts, dict) else None
    return isinstance(found, dict) and any(
        isinstance(v, dict) and v.get("pending") for v in found.values()
    )


def _torch_build(facts: dict[str, Any], ended: Missing | None = None) -> TorchBuild:
    ended = ended or Missing("crashed", "ended the probe")
    found = facts.get("companions")
    found = found if isinstance(found, dict) else {}
    return TorchBuild(
        cuda=_maybe_str(facts.get("cuda"), "cpu_build"),
        cudnn=_maybe_str(facts.get("cudnn"), "not_built"),
        nccl=_maybe_str(facts.get("nccl"), "not_built"),
        hip=_maybe_str(facts.get("hip"), "not_rocm"),
        arch_list=_str_list(facts.get("arch_list")),
        cuda_available=_maybe_bool(facts.get("cuda_available")),
        device_count=_maybe_int(facts.get("device_count")),
        mps_built=_maybe_bool(facts.get("mps_built")),
        mps_available=_maybe_bool(facts.get("mps_available")),
        torchvision=_companion("torchvision", found.get("torchvision"), ended),
        torchaudio=_companion("torchaudio", found.get("torchaudio"), ended),
    )


def _tf_build(facts: dict[str, Any]) -> TensorflowBuild:
    info = facts.get("build_info")
    info = info if isinstance(info, dict) and "missing" not in info else {}
    is_cuda = bool(info.get("is_cuda_build", False))
    caps = info.get("cuda_compute_capabilities", "")
    if isinstance(caps, str):
        cap_list = tuple(c for c in re.split(r"[\s,;\[\]']+", caps) if c)
    else:
        cap_list = _str_list(caps)
    gpus_raw = facts.get("gpus")
    gpus: Maybe[tuple[str, ...]] = (
        _str_list(gpus_raw) if isinstance(gpus_raw, list) else Missing("error", str(gpus_raw))
    )
    return TensorflowBuild(
        is_cuda_build=is_cuda,
        cuda_version=_maybe_str(info.get("cuda_version"), "cpu_build"),
        cudnn_version=_maybe_str(info.get("cudnn_version"), "cpu_build"),
        compute_capabilities=cap_list,
        gpus=gpus,
        build_info={str(k): str(v) for k, v in info.items()},
    )


def _ended(timed_out: bool, timeout: float, code: int | None, stderr: str) -> Missing:
    """How a worker that left a companion pending ended: Missing("timeout"/"crashed", words)."""
    if timed_out:
        return Missing("timeout", f"did not finish within {timeout:g} s; the probe was killed")
    tail = " | ".join(line.strip()[:200] for line in stderr.strip().splitlines()[-3:])
    return Missing(
        "crashed",
        f"killed the interpreter ({_describe_exit(code)})" + (f": {tail}" if tail else ""),
    )


def _to_probe(
    name: str,
    payload: dict[str, Any] | None,
    *,
    err: bytes,
    code: int | None,
    timed_out: bool,
    elapsed: float,
    timeout: float,
) -> Maybe[FrameworkProbe]:
    stderr = err.decode("utf-8", errors="replace")
    exit_code: Maybe[int] = code if code is not None else Missing("no_exit_status")
    # torch's facts were written before a companion's import killed or hung the worker: keep them
    pending = _pending_companion(payload)
    if timed_out and not pending:
        return FrameworkProbe(
            name,
            "timeout",
            f"importing {name} did not finish within {timeout:g} s; the probe was killed",
            Missing("timeout"),
            round(elapsed, 3),
            exit_code,
            failed_libraries(stderr),
            _loader_lines(stderr),
        )
    if payload is None:
        tail = stderr.strip().splitlines()[-3:]
        detail = f"the interpreter died while importing {name} ({_describe_exit(code)})"
        if tail:
            detail += ": " + " | ".join(line.strip()[:200] for line in tail)
        return FrameworkProbe(
            name,
            "crashed",
            detail,
            Missing("crashed"),
            round(elapsed, 3),
            exit_code,
            failed_libraries(stderr),
            _loader_lines(stderr),
        )
    status = str(payload.get("status", "error"))
    if status == "not_installed":
        return Missing(
            "not_installed", f"{name} is not importable by {payload.get('python_executable')}"
        )
    detail = str(payload.get("detail", ""))
    warnings_ = tuple(str(w) for w in payload.get("warnings", []))
    libs = failed_libraries(stderr, detail, str(payload.get("traceback", "")), *warnings_)
    messages = warnings_ + _loader_lines(stderr)
    seconds = float(payload.get("import_seconds", elapsed))
    if status != "ok":
        return FrameworkProbe(
            name,
            "import_failed",
            detail,
            Missing("import_failed"),
            seconds,
            exit_code,
            libs,
            messages,
        )
    facts = payload.get("facts", {})
    version = _maybe_str(facts.get("version"))
    imported = str(facts.get("imported", name))
    if facts.get("core_error"):
        label = "TensorFlow" if name == "tensorflow" else name
        messages += (
            f"{label}'s core alone did not answer ({facts['core_error']}); "
            "the full import was used",
        )
    not_this: Missing = Missing("not_probed")
    return FrameworkProbe(
        name,
        "ok",
        "",
        version,
        seconds,
        exit_code,
        libs,
        messages,
        imported,
        torch=_torch_build(facts, _ended(timed_out, timeout, code, stderr) if pending else None)
        if name == "torch"
        else not_this,
        tensorflow=not_this if name == "torch" else _tf_build(facts),
    )
