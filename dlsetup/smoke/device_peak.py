"""How fast a device computes, against what it should: matmul throughput and memory bandwidth as a
percentage of the device's peak.

* On a CUDA GPU (torch): FP32, TF32, BF16 and FP16 matmul (``2 n^3`` floating-point operations per
  ``n x n`` product, timed with CUDA events) and device-memory bandwidth (a ``copy_`` of 1 GiB:
  read + write), against the datasheet table ``compat/data/gpu_peaks.yaml`` (dense figures).
* On the CPU: FP32 matmul against the bound ``cores x frequency x FP32 FLOPs per cycle``, the last
  from the vector units ``/proc/cpuinfo`` lists (AVX-512 with FMA: 64, AVX2 with FMA: 32, AVX: 16,
  SSE2: 8; two FMA pipes per core assumed, so this is an upper bound) and the maximum frequency
  (``cpuinfo_max_freq``, else ``cpu MHz``).

A matmul below :data:`BAR` (60 %) of its peak is a finding that names which, by how much, and the
clock/throttle/PCIe facts next to it (the caller passes them; NVML is read in dlsetup, not here).

The measuring half (:func:`measure_cpu`, :func:`measure_cuda`, ``python device_peak.py --json``)
imports only the standard library and torch, so it can run inside a target interpreter that has no
dlsetup; :func:`datasheet_peaks` (the table lookup) runs in dlsetup.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Below this share of the peak a matmul figure is a finding.
BAR = 0.60
#: Seconds a measurement past its timeout may take to stop after SIGTERM before it is killed.
STOP_GRACE_S = 5.0

#: Matrix size of the GPU matmuls, and the CPU's (2 n^3 FLOPs each).
GPU_N = 8192
CPU_N = 1024
#: Bytes copied per bandwidth iteration on the GPU (read once, written once).
COPY_BYTES = 1 << 30


@dataclass(frozen=True)
class Measurement:
    """One measured figure.

    Attributes:
        name: ``fp32``, ``tf32``, ``bf16``, ``fp16`` (matmul, TFLOPS on a GPU, GFLOPS on the CPU)
            or ``memory`` (GB/s, 10^9 bytes per second).
        value: the best of the timed rounds.
        unit: ``TFLOPS``, ``GFLOPS`` or ``GB/s``.
        detail: what was timed (``"8192x8192 @ 8192x8192, 10 iterations x 3 rounds"``).
    """

    name: str
    value: float
    unit: str
    detail: str = ""


@dataclass(frozen=True)
class Figure:
    """A measurement against its peak.

    Attributes:
        name / unit / measured: as in :class:`Measurement`.
        peak: the datasheet (or computed) peak in the same unit, None when unknown.
        percent: ``100 * measured / peak``, None without a peak.
        below_bar: a matmul under :data:`BAR` of its peak.
    """

    name: str
    unit: str
    measured: float
    peak: float | None
    percent: float | None
    below_bar: bool


@dataclass(frozen=True)
class CpuBound:
    """The CPU's FP32 peak: ``cores x ghz x flops_per_cycle`` GFLOPS."""

    cores: int
    ghz: float
    flops_per_cycle: int
    vector: str
    model: str = ""

    @property
    def gflops(self) -> float:
        return self.cores * self.ghz * self.flops_per_cycle


@dataclass(frozen=True)
class PeakReport:
    """Everything one run found.

    Attributes:
        device: ``cuda:0 NVIDIA H100 80GB HBM3`` or ``cpu <model>``.
        reference: where the peaks come from (the datasheet row, or the CPU bound's terms).
        figures: each measurement against its peak.
        findings: one sentence per matmul below the bar, with the facts beside it.
        facts: the clock/throttle/PCIe facts the caller supplied.
    """

    device: str
    reference: str
    figures: tuple[Figure, ...]
    findings: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ the CPU bound ----


def flops_per_cycle(flags: Sequence[str], machine: str = "x86_64") -> tuple[int, str]:
    """FP32 FLOPs per cycle and core from ``/proc/cpuinfo`` flags (two FMA pipes assumed).

    Returns:
        ``(flops, vector)``: ``(64, "AVX-512 FMA")``, ``(32, "AVX2 FMA")``, ``(16, "AVX")``,
        ``(8, "SSE2")``; on aarch64 ``(16, "NEON FMA")``; else ``(2, "scalar")``.
    """
    have = set(flags)
    if machine in ("aarch64", "arm64"):
        return (16, "NEON FMA") if {"asimd", "fphp"} & have or machine == "arm64" else (2, "scalar")
    if "avx512f" in have and "fma" in have:
        return 64, "AVX-512 FMA"
    if "avx2" in have and "fma" in have:
        return 32, "AVX2 FMA"
    if "avx" in have:
        return 16, "AVX"
    if "sse2" in have:
        return 8, "SSE2"
    return 2, "scalar"


def parse_cpuinfo(text: str) -> tuple[list[str], str, int, float]:
    """``(flags, model name, physical cores, highest 'cpu MHz')`` from ``/proc/cpuinfo`` text."""
    flags: list[str] = []
    model = ""
    cores: set[tuple[str, str]] = set()
    processors = 0
    mhz = 0.0
    physical = core = ""
    for line in [*text.splitlines(), ""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("flags", "Features") and not flags:
            flags = value.split()
        elif key == "model name" and not model:
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        elif key == "cpu MHz":
            mhz = max(mhz, float(value or 0))
        elif key == "processor":
            processors += 1
        elif not line.strip() and (physical or core):
            cores.add((physical, core))
            physical = core = ""
    return flags, model, len(cores) or processors, mhz


def cpu_bound(
    cpuinfo: str | None = None,
    max_freq_khz: int | None = None,
    usable_cpus: int | None = None,
    machine: str | None = None,
) -> CpuBound:
    """The CPU's FP32 bound, from ``/proc/cpuinfo`` and cpufreq (arguments override for tests).

    Cores are the physical cores this process may use (``sched_getaffinity``, capped by the
    physical count); the frequency is cpufreq's maximum, else the highest ``cpu MHz``.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    flags, model, physical, mhz = parse_cpuinfo(cpuinfo)
    if max_freq_khz is None:
        try:
            freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
            max_freq_khz = int(freq.strip())
        except (OSError, ValueError):
            max_freq_khz = None
    ghz = max_freq_khz / 1e6 if max_freq_khz else mhz / 1000.0
    if usable_cpus is None:
        usable_cpus = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ) or 1
    cores = max(1, min(usable_cpus, physical or usable_cpus))
    fpc, vector = flops_per_cycle(flags, machine or os.uname().machine)
    return CpuBound(cores, round(ghz, 3), fpc, vector, model)


# ------------------------------------------------------------------------------- measuring ----


def _best_rate(run: Callable[[], float], work: float, rounds: int) -> float:
    """``work / seconds`` of the fastest of ``rounds`` runs (``run`` returns seconds)."""
    return max(work / max(run(), 1e-12) for _ in range(rounds))


def measure_cpu(n: int = CPU_N, iterations: int = 3, rounds: int = 3) -> Measurement:
    """FP32 matmul on the CPU with torch (NumPy when torch is missing), GFLOPS."""
    try:
        import torch

        a = torch.rand(n, n, dtype=torch.float32)
        b = torch.rand(n, n, dtype=torch.float32)
        matmul: Callable[[], object] = lambda: torch.matmul(a, b)  # noqa: E731
        library = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        import numpy as np

        x = np.random.rand(n, n).astype(np.float32)
        y = np.random.rand(n, n).astype(np.float32)
        matmul = lambda: x @ y  # noqa: E731
        library = f"numpy {np.__version__}"
    matmul()  # warm-up: thread pool, page faults

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(iterations):
            matmul()
        return (time.perf_counter() - start) / iterations

    rate = _best_rate(timed, 2.0 * n**3 / 1e9, rounds)
    return Measurement("fp32", rate, "GFLOPS", f"{n}x{n} matmul, {library}")


def measure_cuda(
    index: int = 0, n: int = GPU_N, iterations: int = 10, rounds: int = 3
) -> tuple[str, tuple[int, int], list[Measurement]]:
    """Matmul (FP32, TF32, BF16, FP16 where the GPU has them) and copy bandwidth on ``cuda:index``.

    Returns:
        ``(device name, compute capability, measurements)``.
    """
    import torch

    device = torch.device("cuda", index)
    name = torch.cuda.get_device_name(device)
    cc = torch.cuda.get_device_capability(device)
    # "highest" keeps FP32 matmuls in FP32, "high" lets them use TF32 tensor cores; this API is
    # stable across torch releases (allow_tf32 gave way to fp32_precision in 2.9).
    saved = torch.get_float32_matmul_precision()
    out: list[Measurement] = []

    def cuda_time(fn: Callable[[], object]) -> float:
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(iterations):
            fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1000.0 / iterations

    kinds: list[tuple[str, Any, bool]] = [("fp32", torch.float32, False)]
    if cc >= (8, 0):
        kinds += [("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]
    if cc >= (7, 0):
        kinds.append(("fp16", torch.float16, False))
    try:
        for label, dtype, tf32 in kinds:
            torch.set_float32_matmul_precision("high" if tf32 else "highest")
            product = functools.partial(
                torch.matmul,
                torch.randn(n, n, device=device, dtype=dtype),
                torch.randn(n, n, device=device, dtype=dtype),
            )
            product()  # warm-up: cuBLAS handle, kernel choice
            rate = _best_rate(functools.partial(cuda_time, product), 2.0 * n**3 / 1e12, rounds)
            detail = f"{n}x{n} matmul, {iterations} iterations x {rounds} rounds"
            out.append(Measurement(label, rate, "TFLOPS", detail))
        source = torch.empty(COPY_BYTES // 4, device=device, dtype=torch.float32)
        copy = functools.partial(torch.empty_like(source).copy_, source)
        copy()
        rate = _best_rate(functools.partial(cuda_time, copy), 2.0 * COPY_BYTES / 1e9, rounds)
        detail = f"copy of {COPY_BYTES >> 20} MiB (read + write)"
        out.append(Measurement("memory", rate, "GB/s", detail))
    finally:
        torch.set_float32_matmul_precision(saved)
        torch.cuda.empty_cache()
    return name, (int(cc[0]), int(cc[1])), out


# --------------------------------------------------------------------------------- judging ----


def compare(
    measurements: Sequence[Measurement], peaks: Mapping[str, float | None], bar: float = BAR
) -> tuple[Figure, ...]:
    """Each measurement against ``peaks[name]`` (same unit); matmuls under ``bar`` are flagged."""
    figures = []
    for m in measurements:
        peak = peaks.get(m.name)
        percent = 100.0 * m.value / peak if peak else None
        below = m.name != "memory" and percent is not None and percent < 100.0 * bar
        figures.append(Figure(m.name, m.unit, round(m.value, 2), peak, _round(percent), below))
    return tuple(figures)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


_LABELS = {"fp32": "FP32", "tf32": "TF32", "bf16": "BF16", "fp16": "FP16", "memory": "memory"}


def _facts_text(facts: Mapping[str, Any]) -> str:
    parts = []
    if facts.get("sm_clock_mhz") is not None:
        parts.append(f"SM clock {facts['sm_clock_mhz']} of {facts.get('sm_clock_max_mhz')} MHz")
    if facts.get("clock_event_reasons") is not None:
        reasons = facts["clock_event_reasons"]
        parts.append("clock event reasons: " + (", ".join(reasons) if reasons else "none"))
    if facts.get("pcie_gen_current") is not None:
        parts.append(
            f"PCIe Gen{facts['pcie_gen_current']} x{facts.get('pcie_width_current')} (max "
            f"Gen{facts.get('pcie_gen_max')} x{facts.get('pcie_width_max')})"
        )
    if facts.get("temperature_c") is not None:
        parts.append(f"{facts['temperature_c']} °C")
    if facts.get("power_limit_w") is not None:
        parts.append(f"power limit {facts['power_limit_w']:g} W")
    return "; ".join(parts)


def findings(
    figures: Sequence[Figure],
    reference: str,
    facts: Mapping[str, Any] | None = None,
    bar: float = BAR,
) -> tuple[str, ...]:
    """One sentence per matmul figure below the bar, naming it, the gap and the facts."""
    beside = _facts_text(facts or {})
    out = []
    for f in figures:
        if not f.below_bar or f.peak is None or f.percent is None:
            continue
        out.append(
            f"{_LABELS[f.name]} matmul reached {f.measured:g} {f.unit}, {f.percent:g}% of the "
            f"{f.peak:g} {f.unit} peak ({reference}): {100 * bar - f.percent:.1f} points below "
            f"the {100 * bar:g}% bar" + (f" [{beside}]" if beside else "")
        )
    return tuple(out)


def datasheet_peaks(device_name: str) -> tuple[dict[str, float | None], str] | None:
    """``({name: peak}, reference)`` from the datasheet table for a GPU name, or None (dlsetup)."""
    from dlsetup.compat.gpu_peaks import peak_for

    row = peak_for(device_name)
    if row is None:
        return None
    peaks = {kind: row.matmul_peak(kind) for kind in ("fp32", "tf32", "bf16", "fp16")}
    peaks["memory"] = row.memory_bandwidth_gbs
    note = " (unverified figures)" if row.unverified else ""
    return peaks, f"{row.model} datasheet{note}"


def cpu_report(
    bound: CpuBound | None = None, measurement: Measurement | None = None, bar: float = BAR
) -> PeakReport:
    """Measure (unless given) the CPU's FP32 matmul and judge it against its bound."""
    bound = bound or cpu_bound()
    measured = measurement or measure_cpu()
    reference = (
        f"{bound.cores} cores x {bound.ghz:g} GHz x {bound.flops_per_cycle} FLOP/cycle "
        f"({bound.vector})"
    )
    figures = compare([measured], {"fp32": bound.gflops}, bar)
    return PeakReport(
        f"cpu {bound.model}".strip(), reference, figures, findings(figures, reference, bar=bar), {}
    )


def nvml_facts(index: int) -> dict[str, Any]:
    """Clocks, clock event reasons, PCIe link, temperature and power of GPU ``index`` from NVML,
    for the findings (dlsetup side; read right after the measurement)."""
    from dlsetup.facts import Missing
    from dlsetup.probes.nvidia import clock_event_reason_names, probe_nvidia

    facts = probe_nvidia()
    if facts.status != "ok" or index >= len(facts.gpus):
        return {"nvml": facts.status}
    gpu = facts.gpus[index]
    out: dict[str, Any] = {}
    for name in (
        "sm_clock_mhz",
        "sm_clock_max_mhz",
        "pcie_gen_current",
        "pcie_gen_max",
        "pcie_width_current",
        "pcie_width_max",
        "temperature_c",
        "power_limit_w",
        "power_draw_w",
        "utilization_gpu_percent",
    ):
        value = getattr(gpu, name)
        out[name] = None if isinstance(value, Missing) else value
    reasons = gpu.clocks_event_reasons
    out["clock_event_reasons"] = (
        None if isinstance(reasons, Missing) else clock_event_reason_names(reasons)
    )
    return out


def sample_nvml_during(
    process: Any, index: int, interval: float = 0.25, deadline: float | None = None
) -> dict[str, Any]:
    """NVML facts of GPU ``index`` sampled while ``process`` (anything with ``poll()``: a
    :class:`dlsetup.children.Child`, a ``Popen``) runs: the sample with the highest utilization, so
    clocks, clock event reasons and the PCIe link are seen under load (an idle GPU drops its link
    to Gen1 and its clocks to idle). After the run when no sample was taken. Sampling stops at
    ``deadline`` (a ``time.monotonic()`` value); ending the process is the caller's.
    """
    best: dict[str, Any] | None = None
    samples = 0
    while process.poll() is None:
        if deadline is not None and time.monotonic() > deadline:
            break
        facts = nvml_facts(index)
        samples += 1
        if best is None or (facts.get("utilization_gpu_percent") or -1) > (
            best.get("utilization_gpu_percent") or -1
        ):
            best = facts
        time.sleep(interval)
    if best is None:
        return {**nvml_facts(index), "sampled": "after the run"}
    return {**best, "sampled": f"during the run (busiest of {samples} samples)"}


def run_device_peak(
    python: str | None = None, device: str = "cuda:0", timeout: float = 300.0, bar: float = BAR
) -> PeakReport:
    """Measure ``device`` (``cuda:N`` or ``cpu``) in the target interpreter and judge it (dlsetup
    side): the measuring script runs as ``python device_peak.py``, so the target needs only torch;
    on a GPU, NVML is sampled meanwhile for the facts beside a finding.

    The measurement runs in a process group of its own (:mod:`dlsetup.children`): past
    ``timeout`` it gets SIGTERM, :data:`STOP_GRACE_S` seconds, then SIGKILL with its group, so a hung
    GPU call returns control to dlsetup within ``timeout + STOP_GRACE_S`` (plus the bounded reap).

    Raises:
        subprocess.CalledProcessError / subprocess.TimeoutExpired: the measurement failed.
    """
    import subprocess
    import tempfile

    from dlsetup.children import start

    command = [python or sys.executable, __file__]
    command += ["--cpu"] if device == "cpu" else ["--device", device.partition(":")[2] or "0"]
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with start(command, stdout=out, stderr=err) as process:
            sampled = (
                sample_nvml_during(process, int(device.partition(":")[2] or 0), deadline=deadline)
                if device != "cpu"
                else {}
            )
            code, timed_out = process.finish(
                max(0.0, deadline - time.monotonic()), grace=STOP_GRACE_S
            )
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if timed_out:
        raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
    if code != 0:
        raise subprocess.CalledProcessError(code, command, stdout, stderr)
    result = json.loads(stdout.strip().splitlines()[-1])
    measured = [Measurement(**m) for m in result["measurements"]]
    if result["device"] == "cpu":
        bound = CpuBound(**result["cpu_bound"])
        return cpu_report(bound, measured[0], bar=bar)
    facts = {"cc": ".".join(map(str, result["cc"])), **sampled}
    found = datasheet_peaks(result["name"])
    peaks, reference = found if found else ({}, "no datasheet row for this GPU")
    figures = compare(measured, peaks, bar)
    return PeakReport(
        f"{result['device']} {result['name']}",
        reference,
        figures,
        findings(figures, reference, facts, bar),
        facts,
    )


@dataclass(frozen=True)
class DevicePeak:
    """One device of a ``smoke --benchmark`` run measured against its peak.

    Attributes:
        device: the smoke run's device name (``cpu``, ``gpu:0``).
        report: the figures against the peak, None when the measurement failed.
        error: why there is no report ("" with one).
        gated: ``--gate-device-peak`` was given, so a matmul below the bar fails the run;
            otherwise the findings are informational (a warning in the report).
    """

    device: str
    report: PeakReport | None
    error: str = ""
    gated: bool = False

    @property
    def failed(self) -> bool:
        """True when gated and a matmul figure is below the bar."""
        return self.gated and self.report is not None and bool(self.report.findings)


def measure_devices(
    python: str | None,
    devices: Sequence[str],
    *,
    bar: float = BAR,
    gate: bool = False,
    timeout: float = 300.0,
) -> tuple[DevicePeak, ...]:
    """:func:`run_device_peak` for each smoke device (``cpu``, ``gpu:N``/``cuda:N``); a device
    whose measurement fails (no torch in the target, a crash, a timeout) gets an ``error``
    instead of a report, never an exception: the smoke run's own verdicts stand."""
    import subprocess

    out = []
    seen: set[str] = set()
    for device in devices:
        low = device.lower()
        if low in ("cpu", "cpu:0"):  # torch says cpu, TensorFlow cpu:0: one CPU, measured once
            target = "cpu"
        elif low.startswith(("gpu", "cuda")):
            target = "cuda:" + (low.partition(":")[2] or "0")
        else:  # mps, xpu: no bound or datasheet table for them
            target = low
        if target in seen:
            continue
        seen.add(target)
        if target != "cpu" and not target.startswith("cuda:"):
            out.append(DevicePeak(device, None, f"no peak is known for {device}", gate))
            continue
        try:
            report = run_device_peak(python, target, timeout, bar=bar)
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit {exc.returncode}"]
            out.append(DevicePeak(device, None, f"the measurement failed: {tail[0]}", gate))
            continue
        except (subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
            out.append(DevicePeak(device, None, f"the measurement failed: {exc}", gate))
            continue
        out.append(DevicePeak(device, report, "", gate))
    return tuple(out)


def device_peak_lines(peak: DevicePeak) -> list[str]:
    """Text for one device: the figures, then each finding as a warning (or, gated, a failure)."""
    if peak.report is None:
        return [f"{peak.device}: not measured ({peak.error})"]
    lines = report_lines(peak.report)
    if peak.report.findings and not peak.gated:
        lines.append("  (informational: --gate-device-peak makes a figure below the bar fail)")
    return lines


def report_lines(report: PeakReport) -> list[str]:
    """The report as text: one line per figure, then the findings."""
    lines = [f"{report.device}: against {report.reference}"]
    for f in report.figures:
        against = (
            f"{f.percent:g}% of {f.peak:g} {f.unit}" if f.peak is not None else "no peak known"
        )
        lines.append(f"  {_LABELS[f.name]:<6} {f.measured:>10g} {f.unit:<6} = {against}")
    lines += [f"  warning: {text}" for text in report.findings]
    return lines


def main(argv: Sequence[str]) -> int:
    """``python device_peak.py [--cpu] [--device N]``: print the measurements as JSON (stdlib +
    torch only, for a target interpreter)."""
    use_cpu = "--cpu" in argv
    index = int(argv[argv.index("--device") + 1]) if "--device" in argv else 0
    result: dict[str, Any]
    try:
        import torch

        cuda = not use_cpu and torch.cuda.is_available()
    except ImportError:
        cuda = False
    if cuda:
        name, cc, measured = measure_cuda(index)
        result = {"device": f"cuda:{index}", "name": name, "cc": list(cc)}
    else:
        measured = [measure_cpu()]
        bound = cpu_bound()
        result = {"device": "cpu", "name": bound.model, "cpu_bound": asdict(bound)}
    result["measurements"] = [asdict(m) for m in measured]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
