"""Device speed against its peak: the CPU bound from /proc/cpuinfo, a real CPU matmul measured
here, and the percent/finding logic with given GPU numbers (no GPU on the build machines: the
CUDA half runs in benchmarks/bench_gpu_peak.py on a GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dlsetup.smoke import device_peak as dp

CPUINFO_2_CORES_AVX2 = """\
processor	: 0
model name	: AMD EPYC 7B13
cpu MHz		: 2450.000
physical id	: 0
core id		: 0
flags		: fpu sse sse2 avx fma avx2

processor	: 1
model name	: AMD EPYC 7B13
cpu MHz		: 2450.000
physical id	: 0
core id		: 1
flags		: fpu sse sse2 avx fma avx2

processor	: 2
model name	: AMD EPYC 7B13
cpu MHz		: 2450.000
physical id	: 0
core id		: 0
flags		: fpu sse sse2 avx fma avx2
"""


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["sse2", "avx", "avx2", "fma", "avx512f"], (64, "AVX-512 FMA")),
        (["sse2", "avx", "avx2", "fma"], (32, "AVX2 FMA")),
        (["sse2", "avx", "avx512f"], (16, "AVX")),  # no FMA: multiply and add apart
        (["sse2"], (8, "SSE2")),
        ([], (2, "scalar")),
    ],
)
def test_flops_per_cycle_follow_the_vector_units(
    flags: list[str], expected: tuple[int, str]
) -> None:
    assert dp.flops_per_cycle(flags) == expected


def test_cpu_bound_counts_physical_cores_not_hyperthreads() -> None:
    bound = dp.cpu_bound(CPUINFO_2_CORES_AVX2, max_freq_khz=None, usable_cpus=3, machine="x86_64")
    assert (bound.cores, bound.ghz, bound.flops_per_cycle) == (2, 2.45, 32)
    assert bound.gflops == pytest.approx(156.8)
    # A container limited to one CPU: one core's worth; cpufreq's maximum wins over cpu MHz.
    one = dp.cpu_bound(CPUINFO_2_CORES_AVX2, max_freq_khz=3_500_000, usable_cpus=1)
    assert (one.cores, one.ghz) == (1, 3.5)


def test_cpu_matmul_is_measured_and_judged_against_the_bound() -> None:
    pytest.importorskip("torch")
    report = dp.cpu_report()
    (figure,) = report.figures
    assert figure.name == "fp32" and figure.unit == "GFLOPS"
    assert figure.measured > 0 and figure.peak is not None and figure.percent is not None
    # The bound is an upper bound: a real matmul never beats it by much.
    assert figure.percent < 150
    assert report.reference.endswith(")") and "FLOP/cycle" in report.reference
    assert figure.below_bar == (figure.percent < 60)
    assert bool(report.findings) == figure.below_bar


H100_PEAKS = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5, "memory": 3350.0}


def measured(**values: float) -> list[dp.Measurement]:
    return [dp.Measurement(k, v, "GB/s" if k == "memory" else "TFLOPS") for k, v in values.items()]


def test_healthy_h100_figures_are_percentages_without_findings() -> None:
    figures = dp.compare(
        measured(fp32=51.0, tf32=370.0, bf16=720.0, fp16=735.0, memory=2900.0), H100_PEAKS
    )
    assert [(f.name, f.percent) for f in figures] == [
        ("fp32", 76.1),
        ("tf32", 74.8),
        ("bf16", 72.8),
        ("fp16", 74.3),
        ("memory", 86.6),
    ]
    assert dp.findings(figures, "H100 SXM datasheet") == ()


def test_a_slow_matmul_names_which_by_how_much_and_the_facts_beside_it() -> None:
    figures = dp.compare(measured(fp32=50.0, bf16=400.0, memory=900.0), H100_PEAKS)
    facts = {
        "sm_clock_mhz": 1155,
        "sm_clock_max_mhz": 1980,
        "clock_event_reasons": ["sw_power_cap", "hw_slowdown"],
        "pcie_gen_current": 5,
        "pcie_width_current": 16,
        "pcie_gen_max": 5,
        "pcie_width_max": 16,
        "temperature_c": 83,
        "power_limit_w": 450.0,
    }
    (text,) = dp.findings(figures, "H100 SXM datasheet", facts)
    assert text == (
        "BF16 matmul reached 400 TFLOPS, 40.4% of the 989.5 TFLOPS peak (H100 SXM datasheet): "
        "19.6 points below the 60% bar [SM clock 1155 of 1980 MHz; clock event reasons: "
        "sw_power_cap, hw_slowdown; PCIe Gen5 x16 (max Gen5 x16); 83 °C; power limit 450 W]"
    )
    # Memory at 27% is reported, but the bar is for matmul only.
    assert next(f for f in figures if f.name == "memory").below_bar is False


def test_a_figure_without_a_peak_is_shown_but_never_judged() -> None:
    (figure,) = dp.compare(measured(bf16=30.0), {"bf16": None})
    assert figure.percent is None and figure.below_bar is False
    report = dp.PeakReport("cuda:0 Tesla T4", "T4 datasheet", (figure,))
    assert dp.report_lines(report)[1].endswith("no peak known")


def test_datasheet_lookup_gives_every_peak_for_a_known_gpu() -> None:
    found = dp.datasheet_peaks("NVIDIA L4")
    assert found is not None
    peaks, reference = found
    assert peaks == {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0, "memory": 300.0}
    assert reference == "L4 datasheet"
    assert dp.datasheet_peaks("Some Future GPU") is None


def test_the_measuring_script_runs_with_only_stdlib_and_torch() -> None:
    pytest.importorskip("torch")
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['device_peak.py', '--cpu']\n"
        "try:\n"
        f"    runpy.run_path({dp.__file__!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dlsetup', 'yaml', 'click')]\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["device"] == "cpu"
    assert result["measurements"][0]["name"] == "fp32"
    assert result["cpu_bound"]["flops_per_cycle"] in (2, 8, 16, 32, 64)


def test_the_facts_beside_a_finding_come_from_nvml(fake_nvml_dir: Path) -> None:
    # The real pynvml against the fake driver: a GPU held back by the power brake at 99% load.
    from tests.support.fake_nvml import SCENARIOS, nvml_env, subprocess_env

    env = nvml_env(fake_nvml_dir, **SCENARIOS["hw_power_brake"], sm_clock="1155,1980")
    code = "import json; from dlsetup.smoke.device_peak import nvml_facts; print(json.dumps(nvml_facts(0)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    facts = json.loads(out.stdout)
    assert facts["clock_event_reasons"] == ["hw_slowdown", "hw_power_brake_slowdown"]
    assert (facts["sm_clock_mhz"], facts["sm_clock_max_mhz"]) == (1155, 1980)
    figures = dp.compare(measured(fp32=20.0), H100_PEAKS)
    (text,) = dp.findings(figures, "H100 SXM datasheet", facts)
    assert "29.9% of the 67 TFLOPS peak" in text
    assert (
        "SM clock 1155 of 1980 MHz; clock event reasons: hw_slowdown, hw_power_brake_slowdown"
        in text
    )


def test_run_device_peak_measures_the_cpu_in_a_target_interpreter() -> None:
    pytest.importorskip("torch")
    report = dp.run_device_peak(sys.executable, "cpu")
    assert report.device.startswith("cpu")
    assert report.figures[0].name == "fp32" and report.figures[0].peak


class _FakeEvent:
    """A CUDA event whose elapsed time is scripted per matmul dtype (ms for all iterations)."""

    def __init__(self, clock: dict[str, float]) -> None:
        self.clock = clock

    def record(self) -> None:
        self.at = self.clock["now"]

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _FakeEvent) -> float:
        return end.at - self.at


def _fake_torch(cc: tuple[int, int], ms_per_call: dict[str, float], log: list[str]) -> Any:
    """Just enough of torch's CUDA API for :func:`measure_cuda`'s control flow (no GPU here)."""
    from types import SimpleNamespace

    clock = {"now": 0.0}
    state = {"precision": "highest"}

    def matmul(a: Any, b: Any) -> None:
        kind = (
            a.dtype
            if a.dtype != "float32"
            else ("tf32" if state["precision"] == "high" else "fp32")
        )
        log.append(kind)
        clock["now"] += ms_per_call[kind]

    def tensor(*shape: Any, device: Any = None, dtype: str = "float32") -> Any:
        def copy_(source: Any) -> None:
            log.append("copy")
            clock["now"] += ms_per_call["copy"]

        return SimpleNamespace(dtype=dtype, copy_=copy_)

    cuda = SimpleNamespace(
        get_device_name=lambda device: "NVIDIA H100 80GB HBM3",
        get_device_capability=lambda device: cc,
        Event=lambda enable_timing: _FakeEvent(clock),
        synchronize=lambda device: None,
        empty_cache=lambda: log.append("empty_cache"),
    )
    return SimpleNamespace(
        device=lambda kind, index: f"{kind}:{index}",
        cuda=cuda,
        float32="float32",
        bfloat16="bf16",
        float16="fp16",
        randn=tensor,
        empty=tensor,
        empty_like=lambda t: tensor(),
        matmul=matmul,
        get_float32_matmul_precision=lambda: state["precision"],
        set_float32_matmul_precision=lambda value: state.update(precision=value),
        _state=state,
    )


def test_cuda_path_measures_each_dtype_the_gpu_has_and_restores_tf32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    # ms per call: 2 * 1024^3 FLOP in 0.05 ms = 42.9 TFLOPS fp32; copy 2 GiB in 1 ms = 2147 GB/s.
    ms = {"fp32": 0.05, "tf32": 0.01, "bf16": 0.005, "fp16": 0.004, "copy": 1.0}
    fake = _fake_torch((9, 0), ms, log)
    fake._state["precision"] = "medium"  # the caller's setting must come back
    monkeypatch.setitem(sys.modules, "torch", fake)
    name, cc, measured = dp.measure_cuda(0, n=1024, iterations=2, rounds=1)
    assert (name, cc) == ("NVIDIA H100 80GB HBM3", (9, 0))
    rates = {m.name: round(m.value, 1) for m in measured}
    assert rates == {"fp32": 42.9, "tf32": 214.7, "bf16": 429.5, "fp16": 536.9, "memory": 2147.5}
    assert fake._state["precision"] == "medium"
    assert log[-1] == "empty_cache"
    report = dp.compare(measured, H100_PEAKS)
    # FP32 at 64% of 67 TFLOPS passes the 60% bar; the tensor-core figures (43-54%) do not.
    assert [f.name for f in report if f.below_bar] == ["tf32", "bf16", "fp16"]


def test_cuda_path_on_volta_skips_tf32_and_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    ms = {"fp32": 0.2, "tf32": 0.1, "bf16": 0.1, "fp16": 0.02, "copy": 3.0}
    monkeypatch.setitem(sys.modules, "torch", _fake_torch((7, 0), ms, log))
    _, _, measured = dp.measure_cuda(0, n=1024, iterations=1, rounds=1)
    assert [m.name for m in measured] == ["fp32", "fp16", "memory"]


def test_nvml_is_sampled_while_the_measurement_runs(fake_nvml_dir: Path) -> None:
    # A Gen1 link at idle is power saving; what matters is the link while the matmuls run: the
    # sampler keeps the busiest sample taken while the measuring process is alive.
    from tests.support.fake_nvml import SCENARIOS, nvml_env, subprocess_env

    env = nvml_env(fake_nvml_dir, **SCENARIOS["pcie_gen1_under_load"])
    code = (
        "import json, subprocess, sys\n"
        "from dlsetup.smoke.device_peak import sample_nvml_during\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.6)'])\n"
        "print(json.dumps(sample_nvml_during(p, 0, interval=0.1)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    facts = json.loads(out.stdout)
    assert facts["utilization_gpu_percent"] == 95
    assert (facts["pcie_gen_current"], facts["pcie_gen_max"]) == (1, 5)
    assert facts["sampled"].startswith("during the run (busiest of ")


# ------------------------------------------------------------- smoke --benchmark wiring ----


def _validate(document: Any, schema: str) -> None:
    import jsonschema

    from dlsetup.output import load_schema

    jsonschema.validate(document, load_schema(schema), cls=jsonschema.Draft202012Validator)


@pytest.mark.slow
@pytest.mark.torch
def test_smoke_benchmark_reports_the_cpu_matmul_against_its_bound_informationally(
    tmp_path: Path,
) -> None:
    from tests.support.proc import run_cli

    bench = tmp_path / "bench.json"
    # A 1000 % bar: a finding on any CPU (a VM's reported frequency can sit below the real one,
    # so the measured figure may pass its estimated bound); without --gate-device-peak it is a
    # warning and the run still passes (.ci/run's gate stays green).
    proc = run_cli(
        "smoke", "--framework", "torch", "--device", "cpu", "--json", "--benchmark",
        "--device-peak-bar", "1000", "--output", str(bench),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    _validate(doc, "dlsetup.smoke")
    document = json.loads(bench.read_text())
    _validate(document, "dlsetup.smoke-benchmark")
    (peak,) = doc["data"]["benchmark"]["device_peak"]
    assert document["data"]["device_peak"] == [peak]
    assert (peak["device"], peak["error"], peak["gated"]) == ("cpu", "", False)
    (figure,) = peak["report"]["figures"]
    assert figure["name"] == "fp32" and figure["unit"] == "GFLOPS"
    assert figure["measured"] > 0 and figure["peak"] > 0
    assert figure["percent"] == pytest.approx(100 * figure["measured"] / figure["peak"], abs=0.1)
    assert figure["below_bar"] is True
    assert "cores x" in peak["report"]["reference"]
    (finding,) = peak["report"]["findings"]
    assert finding.startswith("FP32 matmul reached") and "below the 1000% bar" in finding


@pytest.mark.slow
@pytest.mark.torch
def test_gate_device_peak_fails_the_run_only_below_the_bar() -> None:
    from tests.support.proc import run_cli

    base = ("smoke", "--framework", "torch", "--device", "cpu", "--benchmark", "--gate-device-peak")
    below = run_cli(*base, "--device-peak-bar", "1000")
    assert below.returncode == 1, below.stderr[-3000:]
    assert "warning: FP32 matmul reached" in below.stdout
    assert "Result: PASS" in below.stdout  # the smoke checks themselves passed
    above = run_cli(*base, "--device-peak-bar", "0")
    assert above.returncode == 0, above.stderr[-3000:]
    assert "FP32" in above.stdout and "warning: FP32" not in above.stdout


@pytest.mark.slow
@pytest.mark.torch
def test_smoke_without_benchmark_measures_no_peak() -> None:
    """.ci/run's gate (smoke --compare, no --benchmark) never runs the measurement."""
    from tests.support.proc import run_cli

    proc = run_cli("smoke", "--framework", "torch", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["data"]["benchmark"] is None


def test_a_device_that_cannot_be_measured_gets_an_error_not_an_exception(tmp_path: Path) -> None:
    no_torch = tmp_path / "python"
    no_torch.write_text(
        "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n"
    )
    no_torch.chmod(0o755)
    # torch's "cpu" and TensorFlow's "cpu:0" are one CPU: measured (here: tried) once.
    mps, cpu = dp.measure_devices(str(no_torch), ["mps", "cpu", "cpu:0", "mps"], gate=True)
    assert (mps.device, mps.report, mps.error) == ("mps", None, "no peak is known for mps")
    assert cpu.report is None
    assert cpu.error == "the measurement failed: ModuleNotFoundError: No module named 'torch'"
    assert not cpu.failed  # nothing measured is no gate failure
    assert dp.device_peak_lines(cpu) == [f"cpu: not measured ({cpu.error})"]


def test_gated_findings_fail_and_ungated_ones_are_informational() -> None:
    bound = dp.CpuBound(cores=2, ghz=2.0, flops_per_cycle=32, vector="AVX2 FMA", model="EPYC")
    slow = dp.cpu_report(bound, dp.Measurement("fp32", 40.0, "GFLOPS"))  # 31 % of 128
    fast = dp.cpu_report(bound, dp.Measurement("fp32", 100.0, "GFLOPS"))  # 78 %
    assert dp.DevicePeak("cpu", slow, gated=True).failed
    assert not dp.DevicePeak("cpu", slow, gated=False).failed
    assert not dp.DevicePeak("cpu", fast, gated=True).failed
    lines = dp.device_peak_lines(dp.DevicePeak("cpu", slow))
    assert lines[-2].startswith("  warning: FP32 matmul reached 40 GFLOPS, 31.2%")
    assert "--gate-device-peak" in lines[-1]
    assert dp.cpu_report(bound, dp.Measurement("fp32", 40.0, "GFLOPS"), bar=0.2).findings == ()


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for the interpreter")
def test_a_hung_measurement_that_ignores_sigterm_returns_within_deadline_and_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A GPU call that hangs (and a process that ignores SIGTERM): leaving the measurement used to
    # wait for it without bound; now SIGTERM, the grace, then SIGKILL of its group.
    ready = tmp_path / "ready"
    hung = tmp_path / "python"
    hung.write_text(f"#!/bin/sh\ntrap '' TERM INT\necho ready > {ready}\nexec sleep 120\n")
    hung.chmod(0o755)
    monkeypatch.setattr(dp, "STOP_GRACE_S", 1.0)
    start = time.monotonic()
    (peak,) = dp.measure_devices(str(hung), ["cpu"], timeout=2.0)
    elapsed = time.monotonic() - start
    assert ready.exists()
    assert peak.report is None and peak.error.startswith("the measurement failed:")
    assert elapsed < 2.0 + 1.0 + 3.0, elapsed
