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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlsetup.smoke import device_peak as dp


def gpu_reports() -> list[dp.PeakReport]:
    import torch

    return [
        dp.run_device_peak(sys.executable, f"cuda:{i}") for i in range(torch.cuda.device_count())
    ]


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
