"""GPU speed against its datasheet: matmul (FP32, TF32, BF16, FP16) and device-memory bandwidth
of every visible CUDA GPU as a percentage of the peaks in ``dlsetup/compat/data/gpu_peaks.yaml``,
with NVML's clock / clock-event-reason / PCIe / temperature facts read right after each GPU's run
(a matmul below 60 % of its peak is printed as a finding with those facts beside it).

Without a CUDA GPU it measures the CPU's FP32 matmul against cores x frequency x FLOPs per cycle.

Usage (from the repository root, with torch installed)::

    python benchmarks/bench_gpu_peak.py [--json OUT.json] [--cpu]

Nothing is asserted: it prints figures. Takes about 10 s per GPU (8192^3 matmuls, 1 GiB copies).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlsetup.smoke import device_peak as dp


def nvml_facts(index: int) -> dict[str, Any]:
    """Clocks, clock event reasons, PCIe link, temperature and power of GPU ``index`` (NVML)."""
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
    out["driver"] = None if isinstance(facts.driver_version, Missing) else facts.driver_version
    return out


def gpu_reports() -> list[dp.PeakReport]:
    import torch

    reports = []
    for index in range(torch.cuda.device_count()):
        name, cc, measured = dp.measure_cuda(index)
        facts = {"cc": f"{cc[0]}.{cc[1]}", **nvml_facts(index)}
        found = dp.datasheet_peaks(name)
        peaks, reference = found if found else ({}, "no datasheet row for this GPU")
        figures = dp.compare(measured, peaks)
        reports.append(
            dp.PeakReport(
                f"cuda:{index} {name}",
                reference,
                figures,
                dp.findings(figures, reference, facts),
                facts,
            )
        )
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the reports to this file")
    parser.add_argument("--cpu", action="store_true", help="measure the CPU even with a GPU")
    args = parser.parse_args()
    try:
        import torch

        cuda = torch.cuda.is_available() and not args.cpu
        print(f"torch {torch.__version__} (CUDA {torch.version.cuda})")
    except ImportError:
        cuda = False
    reports = gpu_reports() if cuda else [dp.cpu_report()]
    for report in reports:
        print("\n".join(dp.report_lines(report)))
        if report.facts:
            print(f"  facts: {json.dumps(report.facts)}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
