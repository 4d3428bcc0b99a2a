"""The smoke runner: one worker process per framework, all frameworks in parallel.

Each worker (``torch_worker.py``, ``tf_worker.py``) is started as a script by file path inside the
target interpreter and runs ONE device (``--one-device``), reporting it as a JSON line; each
further device of the framework gets a fresh worker, one after the other, so a device that breaks
the interpreter (a sticky CUDA error, a crash) cannot spoil the others' results. With one device
per framework (any CPU-only machine) that is one worker per framework, as fast as ever. A device
that raises is reported by the worker itself and fails only its own rows. A device that hangs past
the per-device timeout, or kills the worker (a crash, an out-of-memory kill), is recorded as
``timeout``/``crashed`` and a fresh worker carries on with the remaining devices.

Every worker leads its own process group (:mod:`dlsetup.children`), so a terminal's Ctrl-C
reaches only dlsetup; when the run is interrupted or anything raises, :class:`_Workers` ends every
worker's group at once and starts no new one, so nothing outlives ``dlsetup smoke``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dlsetup.children import deferred_stop_signals
from dlsetup.children import start as start_child
from dlsetup.errors import MissingToolError, SmokeError
from dlsetup.facts import Missing
from dlsetup.interpreter import cannot_run, require_interpreter

if TYPE_CHECKING:
    from dlsetup.smoke.results import Agreement, DeviceRun, FrameworkRun, Machine, SmokeReport

# NumPy and the result types (which import the NumPy reference) are imported where they are used,
# after the workers have started: the workers' framework imports are the smoke's critical path, and
# this process's own imports would only delay their start.

FRAMEWORKS: tuple[str, ...] = ("torch", "tensorflow")
WORKER_FILES: dict[str, str] = {"torch": "torch_worker.py", "tensorflow": "tf_worker.py"}
LINE_PREFIX = "DLSETUP-SMOKE "  # the same as worker_protocol.LINE_PREFIX
TIMING_CPU_ENV = "DLSETUP_SMOKE_TIMING_CPU"  # the same as worker_clock.PIN_ENV
#: Seconds the output of a worker that has exited may take to reach its end: a helper the worker
#: started may hold its stdout open, and the run does not wait for that helper.
DRAIN_S = 2.0


def _install(python: str | Path, requirement: str) -> str:
    """The command installing ``requirement`` into ``python``'s environment in its own installer
    (``uv pip install --python PY`` where a venv has no pip; :mod:`dlsetup.installer`)."""
    from dlsetup.installer import install_command, installer_for

    inst = installer_for(str(python), uv="uv" if shutil.which("uv") else None)
    return install_command(inst, [requirement])


def worker_path(framework: str) -> Path:
    """The absolute path of ``framework``'s worker script."""
    return Path(__file__).resolve().parent / WORKER_FILES[framework]


@dataclass(frozen=True)
class RunOptions:
    """What to run.

    Attributes:
        python: the target interpreter.
        frameworks: the frameworks to try (all when empty).
        devices: device names to select (all detected when empty); ``cpu``, ``cuda:0``, ``GPU:0``.
        seed: seed of the dataset and the initial weights.
        steps: training steps.
        timeout_s: seconds one device may take, and a worker may take to start (import the
            framework, list the devices).
        env: extra environment variables for the workers.
        max_disagreement: the largest allowed absolute gap between the PyTorch and TensorFlow
            loss curves of a pair on the same device class (loss units); None: the gap must
            stay inside twice the float32 band at every step (:func:`agreement`).
        companions: check the framework's companions (PyTorch: torchvision, torchaudio) on each
            device after its grid.
    """

    python: Path
    frameworks: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    seed: int = 0
    steps: int = 200
    timeout_s: float = 120.0
    env: tuple[tuple[str, str], ...] = ()
    max_disagreement: float | None = None
    companions: bool = True


class _Cancelled(Exception):
    """The run was stopped (interrupt or an error elsewhere): start no further worker."""


class _Worker:
    """One worker process, leading its own process group, with a reader thread feeding a queue
    of parsed events."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            self.proc = start_child(argv, stdout="pipe", stderr=self.stderr, env=env)
        except OSError as exc:
            self.stderr.close()
            raise cannot_run(argv[0], exc) from exc
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            if line.startswith(LINE_PREFIX):
                try:
                    self.events.put(json.loads(line[len(LINE_PREFIX) :]))
                except json.JSONDecodeError:
                    continue
        self.events.put(None)  # end of output

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event; None at end of output; raises queue.Empty on timeout.

        A worker that has exited ends its output at most :data:`DRAIN_S` seconds later, even when
        a process it started still holds its stdout open.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        exited_at: float | None = None
        while True:
            left = deadline - time.monotonic()
            try:
                return self.events.get(timeout=max(min(left, 0.25), 0.0))
            except queue.Empty:
                if left <= 0.25:
                    raise
            if self.proc.poll() is not None:
                exited_at = exited_at if exited_at is not None else time.monotonic()
                if time.monotonic() - exited_at >= DRAIN_S:
                    return None

    def stop(self) -> str:
        """Kill the process group (if the worker is alive) and return the tail of its stderr."""
        self.proc.stop()  # its group, alive or not: nothing it started outlives it
        self.stderr.seek(0)
        tail = self.stderr.read()[-2000:].decode("utf-8", "replace")
        self.stderr.close()
        return tail.strip()


class _Workers:
    """The live workers of one run, so that all of them can be ended at once.

    After :meth:`stop_all` no new worker starts: :meth:`start` raises :class:`_Cancelled`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self.cancelled = threading.Event()

    def start(self, argv: list[str], env: dict[str, str]) -> _Worker:
        """Start a worker, unless the run has been stopped."""
        with self._lock:
            if self.cancelled.is_set():
                raise _Cancelled
            worker = _Worker(argv, env)
            self._live.add(worker)
            return worker

    def stop(self, worker: _Worker) -> str:
        """End one worker (see :meth:`_Worker.stop`) and forget it."""
        with self._lock:
            self._live.discard(worker)
        return worker.stop()

    def stop_all(self, wait_s: float = 0.0) -> None:
        """End the process group of every live worker and refuse new ones.

        Args:
            wait_s: seconds to wait, in all, until the ended workers have exited (a process
                busy in the kernel, say reading a library from a slow disk, dies only once that
                call returns).
        """
        with self._lock:
            self.cancelled.set()
            ended = [w.proc for w in self._live if w.proc.poll() is None]
            for proc in ended:
                proc.kill()
        deadline = time.monotonic() + wait_s
        for proc in ended:
            proc.wait(max(deadline - time.monotonic(), 0.0))


def _run_framework(
    framework: str, opts: RunOptions, workers: _Workers, reference_cache: str
) -> tuple[FrameworkRun, list[DeviceRun]]:
    """``framework``'s facts and device runs (:class:`_FrameworkRunner`)."""
    return _FrameworkRunner(framework, opts, workers, reference_cache).run()


def _worker_env(opts: RunOptions) -> dict[str, str]:
    """The workers' environment: ours, with ``opts.env`` and quiet TensorFlow logs."""
    env = dict(os.environ)
    env.update(dict(opts.env))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _worker_argv(framework: str, opts: RunOptions, reference_cache: str) -> list[str]:
    """The command line of ``framework``'s worker, but for its ``--devices``."""
    base = [str(opts.python), str(worker_path(framework)), "--seed", str(opts.seed)]
    base += ["--steps", str(opts.steps), "--one-device", "--reference-cache", reference_cache]
    base += [] if opts.companions else ["--no-companions"]
    return base


class _Unavailable(Exception):
    """The framework cannot be imported in the target interpreter (the reason is the message)."""


@dataclass
class _WorkerEnd:
    """How one worker ended.

    Attributes:
        failure: ``(status, why)``: ``timeout`` or ``crashed``; None when it reported its device
            and exited cleanly.
        current: the device it was running when it ended (None: none started, or the last one
            was reported).
        ran: how many devices it reported.
    """

    failure: tuple[str, str] | None = None
    current: str | None = None
    ran: int = 0


class _FrameworkRunner:
    """One framework's run: a fresh worker per device, one after the other, until no selected
    device remains; a device that hangs or crashes its worker fails alone."""

    def __init__(
        self, framework: str, opts: RunOptions, workers: _Workers, reference_cache: str
    ) -> None:
        self.framework = framework
        self.opts = opts
        self.workers = workers
        # each framework's timed work on a CPU of its own, whatever the caller's environment
        # says (worker_clock.one_cpu): torch on the first the run may use, TensorFlow on the next
        self.env = _worker_env(opts) | {TIMING_CPU_ENV: str(FRAMEWORKS.index(framework))}
        self.argv = _worker_argv(framework, opts, reference_cache)
        self.runs: list[DeviceRun] = []
        self.companions = _Companions()
        self.info: FrameworkRun | None = None
        self.remaining: list[str] | None = None  # devices still to run (None: not listed yet)

    def run(self) -> tuple[FrameworkRun, list[DeviceRun]]:
        """The framework's facts and its device runs (companion checks attached)."""
        requested = ",".join(self.opts.devices)
        while self.remaining is None or self.remaining:
            devices_arg = requested if self.remaining is None else ",".join(self.remaining)
            worker = self.workers.start([*self.argv, "--devices", devices_arg], self.env)
            try:
                end = self._follow(worker)
            except _Unavailable as exc:
                return self._unavailable(str(exc)), []
            tail = self.workers.stop(worker)
            if self.workers.cancelled.is_set():
                raise _Cancelled
            broken = self._record_end(end, tail)
            if broken is not None:
                return broken, self.runs
        assert self.info is not None
        torch_version = self.info.version if isinstance(self.info.version, str) else ""
        return self.info, [
            self.companions.attach(run, torch_version, str(self.opts.python)) for run in self.runs
        ]

    def _follow(self, worker: _Worker) -> _WorkerEnd:
        """Read one worker's events until it is done with its device, exits, or hangs past the
        timeout (counted afresh from each device or companion started or reported)."""
        timeout_s = self.opts.timeout_s
        end = _WorkerEnd()
        deadline = time.monotonic() + timeout_s  # to import the framework, list devices
        while True:
            try:
                event = worker.next_event(deadline - time.monotonic())
            except queue.Empty:
                end.failure = (
                    ("timeout", f"no result within {timeout_s:g} s (per-device timeout)")
                    if end.current is not None
                    else ("timeout", f"no answer within {timeout_s:g} s (--timeout)")
                )
                return end
            if event is None:
                status = worker.proc.wait(max(deadline - time.monotonic(), 0.0))
                if status is None:  # it closed its output but runs on: past the deadline
                    end.failure = ("timeout", f"no result within {timeout_s:g} s")
                elif not (end.current is None and end.ran and status == 0):
                    end.failure = ("crashed", f"the worker exited with status {status}")
                # else: done with its device: a fresh worker takes the next one
                return end
            if self._on_event(worker, event, end):
                deadline = time.monotonic() + timeout_s

    def _on_event(self, worker: _Worker, event: dict[str, Any], end: _WorkerEnd) -> bool:
        """Take in one event of ``worker``; True when it started or reported a device or a
        companion (its timeout starts again).

        Raises:
            MissingToolError: the target interpreter cannot import NumPy.
            _Unavailable: it cannot import the framework.
        """
        from dlsetup.smoke.results import FrameworkRun, device_run_from_event

        kind = event.get("event")
        if kind == "no_numpy":
            self.workers.stop(worker)
            raise MissingToolError(
                f"NumPy cannot be imported by {self.opts.python}: {event.get('reason')}",
                fix=f"install numpy in that environment: {_install(self.opts.python, 'numpy')}",
            )
        if kind == "unavailable":
            self.workers.stop(worker)
            raise _Unavailable(str(event.get("reason")))
        if kind == "hello":
            if self.info is None:
                self.info = FrameworkRun(
                    self.framework,
                    "ok",
                    str(event["version"]),
                    tuple(event["devices"]),
                    tuple(event["selected"]),
                    float(event["import_s"]),
                    None,
                )
            if self.remaining is None:
                self.remaining = list(event["selected"])
            return False
        if kind == "device_start":
            end.current = str(event["device"])
            return True
        if kind in ("companion_start", "companion_result"):
            self.companions.record(event)
            return True
        if kind == "device_result":
            self.runs.append(device_run_from_event(self.framework, event))
            end.ran += 1
            if self.remaining is not None and event["device"] in self.remaining:
                self.remaining.remove(event["device"])
            end.current = None
            return True
        return False

    def _record_end(self, end: _WorkerEnd, tail: str) -> FrameworkRun | None:
        """Record how a worker ended (``tail``: the end of its stderr): the companion or device
        it was running when it failed fails; returned, the framework's failure when the worker
        failed before running any device (None: go on with the devices remaining)."""
        from dlsetup.smoke.results import FrameworkRun, failed_device_run

        failure, current = end.failure, end.current
        if failure is not None and current is None:
            self.companions.ended(failure, tail)  # a companion that crashed or hung the worker
        if failure is None or (current is None and (end.ran or self.remaining == [])):
            return None  # its device was reported; the loop ends when no device remains
        if current is None:  # died or hung before any device started: the worker itself failed
            reason = f"{failure[1]} before running any device" + (
                f"; stderr: {tail[-800:]}" if tail else ""
            )
            return FrameworkRun(
                self.framework, "error", Missing("error"), (), (), Missing("error"), reason
            )
        detail = failure[1] + (
            f"; stderr: {tail[-800:]}" if tail and failure[0] == "crashed" else ""
        )
        self.runs.append(
            failed_device_run(
                self.framework,
                current,
                status=failure[0],
                error=detail,
                seed=self.opts.seed,
                steps=self.opts.steps,
            )
        )
        if self.remaining is not None and current in self.remaining:
            self.remaining.remove(current)
        return None

    def _unavailable(self, reason: str) -> FrameworkRun:
        from dlsetup.smoke.results import FrameworkRun

        return FrameworkRun(
            self.framework,
            "unavailable",
            Missing("not_installed", reason),
            (),
            (),
            Missing("not_installed"),
            reason,
        )


class _Companions:
    """The companion checks of one framework's workers, per device."""

    def __init__(self) -> None:
        self.checks: dict[str, list[dict[str, Any]]] = {}
        self.pending: tuple[str, str, float] | None = None  # device, companion, start

    def record(self, event: dict[str, Any]) -> None:
        """A ``companion_start`` or ``companion_result`` event."""
        device = str(event["device"])
        if event["event"] == "companion_start":
            self.pending = (device, str(event["companion"]), time.perf_counter())
            return
        self.checks.setdefault(device, []).append(dict(event["check"]))
        self.pending = None

    def ended(self, failure: tuple[str, str], tail: str) -> None:
        """The worker died or hung after its device's result: fail the companion in progress."""
        if self.pending is None:
            return
        from dlsetup.smoke.companions import CHECKS as COMPANION_CHECKS

        device, name, start = self.pending
        detail = failure[1] + (f"; stderr: {tail[-800:]}" if tail else "")
        self.checks.setdefault(device, []).append({
            "companion": name,
            "check": COMPANION_CHECKS.get(name, name),
            "status": "failed",
            "version": None,
            "stage": failure[0],
            "detail": f"checking {name} ended the worker",
            "error": detail,
            "max_abs_error": None,
            "seconds": time.perf_counter() - start,
        })  # fmt: skip
        self.pending = None

    def attach(self, run: DeviceRun, torch_version: str, python: str) -> DeviceRun:
        """``run`` with its device's companion checks, their seconds as phase ``companions_s``."""
        found = self.checks.get(run.device)
        if not found:
            return run
        # the fix is built here, in dlsetup's process, from the knowledge base's pairs table (the
        # worker inside the target interpreter cannot read it)
        from dlsetup.compat.companions import smoke_fix
        from dlsetup.installer import installer_for
        from dlsetup.smoke.results import companion_check_from_event

        # the fix in the environment's own installer: uv's where a venv has no pip
        inst = installer_for(python, uv="uv" if shutil.which("uv") else None)
        fix = {c["companion"]: smoke_fix(c["companion"], torch_version, inst) for c in found}
        checks = tuple(companion_check_from_event(c, fix[c["companion"]]) for c in found)
        phases = {**run.phases, "companions_s": sum(c.seconds for c in checks)}
        return dataclasses.replace(run, companions=checks, phases=phases)


def machine_info(python: str) -> Machine:
    """Describe this machine for the benchmark file."""
    import psutil

    from dlsetup.smoke.results import Machine

    return Machine(
        hostname=platform.node(),
        system=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count() or 0,
        memory_bytes=int(psutil.virtual_memory().total),
        python=python,
    )


def normalize_device(name: str) -> str:
    """One spelling of a device for both frameworks (``worker_protocol.normalize_device``)."""
    low = name.strip().lower()
    if low in ("cpu", "cpu:0"):
        return "cpu"
    if low.startswith("cuda"):
        low = "gpu" + low[4:]
    if low == "gpu":
        low = "gpu:0"
    return "mps" if low in ("mps", "mps:0") else low


def _kind(device: str) -> str:
    low = device.lower()
    if low.startswith("cuda") or low.startswith("gpu"):
        return "gpu:" + (low.split(":", 1)[1] if ":" in low else "0")
    return low.split(":")[0]


def agreement(
    runs: Sequence[DeviceRun], max_disagreement: float | None = None
) -> tuple[Agreement, ...]:
    """Check (5): per device class present in both frameworks, each pair's two loss curves.

    Both frameworks start from the same weights, so each curve lies inside the float32 band
    around the NumPy reference (:mod:`dlsetup.smoke.curve_band`) and the two within the sum of
    their bands, ``2 * band(t)`` at step ``t`` (the PyTorch curve standing in for the reference).

    Args:
        runs: every device run of the smoke.
        max_disagreement: instead of the band, a fixed bound on the absolute gap at any step
            (loss units, ``--max-disagreement``). A pair whose gap cannot be measured (a
            non-finite curve, already failed by the training check) is not judged
            (``passed`` None).
    """
    import numpy as np

    from dlsetup.smoke import curve_band
    from dlsetup.smoke.reference import ACTIVATIONS, LOSSES
    from dlsetup.smoke.results import Agreement

    by_kind: dict[str, dict[str, DeviceRun]] = {}
    for run in runs:
        if run.status == "ok" and run.curves:
            by_kind.setdefault(_kind(run.device), {})[run.framework] = run
    out: list[Agreement] = []
    for kind, pair in sorted(by_kind.items()):
        if set(pair) != {"torch", "tensorflow"}:
            continue
        t, f = pair["torch"], pair["tensorflow"]
        names = [(a, lo) for a in ACTIVATIONS for lo in LOSSES]
        for i, (act, loss) in enumerate(names):
            ct, cf = t.curves[i], f.curves[i]
            if any(v is None for v in (*ct, *cf)) or len(ct) != len(cf):
                bound = "max_disagreement" if max_disagreement is not None else "band"
                out.append(
                    Agreement(kind, act, loss, None, None, max_disagreement, None, bound=bound)
                )
                continue
            a, b = np.array(ct, dtype=np.float64), np.array(cf, dtype=np.float64)
            gaps = np.abs(a - b)
            allowed = (
                np.full(gaps.shape, max_disagreement)
                if max_disagreement is not None
                else 2.0 * curve_band.band(a)
            )
            scale = float(np.max(np.abs(a))) or 1.0
            worst = float(np.max(gaps))
            outside = gaps > allowed
            step = int(np.argmax(outside)) if outside.any() else None
            at = step if step is not None else int(np.argmax(gaps / allowed))
            out.append(
                Agreement(
                    kind,
                    act,
                    loss,
                    worst,
                    worst / scale,
                    float(allowed[at]),
                    step is None,
                    step=step,
                    gap_at_step=float(gaps[at]),
                    bound="max_disagreement" if max_disagreement is not None else "band",
                )
            )
    return tuple(out)


def run_smoke(opts: RunOptions) -> SmokeReport:
    """Run every selected framework's worker in parallel and collect the report.

    Raises:
        MissingToolError: the interpreter does not exist or cannot run, or no framework is
            installed in it.
        SmokeError: a selected device exists in no framework, or a worker could not start.
    """
    require_interpreter(opts.python)
    frameworks = opts.frameworks or FRAMEWORKS
    started = time.perf_counter()
    results = _run_frameworks(opts, frameworks)
    from dlsetup.smoke.results import ZERO_ONE_NOTE, SmokeReport

    wall = time.perf_counter() - started
    infos = tuple(results[n][0] for n in frameworks)
    runs = tuple(r for n in frameworks for r in results[n][1])
    _require_selection(opts, frameworks, infos)
    agreed = agreement(runs, opts.max_disagreement)
    passed = (
        all(i.status in ("ok", "unavailable") for i in infos)
        and all(r.passed for r in runs)
        and all(a.passed is not False for a in agreed)
    )
    return SmokeReport(
        passed=passed,
        python=str(opts.python),
        seed=opts.seed,
        steps=opts.steps,
        wall_s=wall,
        machine=machine_info(str(opts.python)),
        frameworks=infos,
        runs=runs,
        agreement=agreed,
        zero_one_note=ZERO_ONE_NOTE,
        max_disagreement=opts.max_disagreement,
    )


def _run_frameworks(
    opts: RunOptions, frameworks: tuple[str, ...]
) -> dict[str, tuple[FrameworkRun, list[DeviceRun]]]:
    """Run each framework in a thread of its own (:func:`_run_framework`); the first error of
    any raised here, once every worker has ended.

    On an interrupt (Ctrl-C, SIGTERM) or any error every worker's process group is ended before
    this returns or raises.
    """
    results: dict[str, tuple[FrameworkRun, list[DeviceRun]]] = {}
    errors: list[Exception] = []
    workers = _Workers()
    # the NumPy reference of the grid is the same for every worker of the run (same seed, steps
    # and weights): the first to compute it leaves it here for the others (worker_reference.py)
    cache = tempfile.mkdtemp(prefix="dlsetup-smoke-")
    reference_cache = os.path.join(cache, "reference.npz")

    def work(name: str) -> None:
        try:
            results[name] = _run_framework(name, opts, workers, reference_cache)
        except _Cancelled:
            return
        except Exception as exc:  # raised again below, in the calling thread
            errors.append(exc)
            workers.stop_all()  # the run fails: end the other frameworks' workers too

    threads = [threading.Thread(target=work, args=(name,), daemon=True) for name in frameworks]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                # a short join, not join(): a signal that the kernel hands to another thread
                # (a framework thread's os.kill, a worker start) only runs its Python handler
                # when the main thread wakes up — a plain join() would sleep through SIGTERM
                t.join(0.1)
    except BaseException:  # Ctrl-C, SIGTERM (Terminated) or anything else: no worker outlives us
        with deferred_stop_signals():  # a second signal must not cut the clean-up short
            workers.stop_all(wait_s=10.0)
            for t in threads:
                if t.ident is not None:
                    t.join(timeout=5.0)
        raise
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if errors:
        raise errors[0]
    return results


def _require_selection(
    opts: RunOptions, frameworks: tuple[str, ...], infos: tuple[FrameworkRun, ...]
) -> None:
    """Refuse a run that tested nothing that was asked for.

    Raises:
        MissingToolError: no framework could be imported, or one named with ``--framework``
            could not.
        SmokeError: a device named with ``--device`` exists in no framework.
    """
    available = [i for i in infos if i.status != "unavailable"]
    if not available:
        wanted = " or ".join(frameworks)
        raise MissingToolError(
            f"no framework to test: {wanted} cannot be imported by {opts.python}",
            fix="install one into that environment, for example "
            f"`{_install(opts.python, 'torch')}` or `{_install(opts.python, 'tensorflow')}`, "
            "or point --python at an environment that has one",
        )
    if opts.frameworks:
        missing = [i for i in infos if i.status == "unavailable"]
        if missing:
            raise MissingToolError(
                f"{missing[0].framework} cannot be imported by {opts.python}: {missing[0].reason}",
                fix=f"install {missing[0].framework} into that environment or drop --framework "
                f"{missing[0].framework}",
            )
    if opts.devices and all(i.status == "ok" for i in available):
        seen = sorted({d for i in available for d in i.devices})
        detected = {normalize_device(d) for d in seen}
        absent = [d for d in opts.devices if normalize_device(d) not in detected]
        if absent:
            raise SmokeError(
                f"no framework detects device {', '.join(absent)} (detected: {', '.join(seen)})",
                fix="pick one of the detected devices with --device, or leave --device out",
            )
