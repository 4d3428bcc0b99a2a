#!/usr/bin/env bash
# The final check on a real NVIDIA machine (not part of CI): doctor against the real driver and the
# smoke grid on every GPU, with the figures kept in OUTDIR. Needs python3 with torch (a CUDA build),
# click, rich, psutil, nvidia-ml-py, numpy, pyyaml and packaging; dlsetup is used from this checkout.
#
#   benchmarks/gpu_check.sh OUTDIR
set -uo pipefail
out="${1:?usage: benchmarks/gpu_check.sh OUTDIR}"
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NO_COLOR=1 PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"

nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv >> "$out/nvidia-smi.txt" 2>&1
"$py" -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_arch_list())"

echo "== dlsetup doctor"
TIMEFORMAT="doctor --json took %R s"
time "$py" -m dlsetup doctor --json > "$out/doctor.json"
echo "doctor --json exit $?"
"$py" -m dlsetup doctor > "$out/doctor.txt" 2>&1; echo "doctor exit $?"
cat "$out/doctor.txt"

echo "== GPU speed against its datasheet (matmul FP32/TF32/BF16/FP16, memory bandwidth)"
"$py" benchmarks/bench_gpu_peak.py --json "$out/gpu-peak.json" 2>&1 | tee "$out/gpu-peak.txt"

echo "== dlsetup smoke (every device torch sees)"
"$py" -m dlsetup smoke --framework torch --json --benchmark --force --output "$out/smoke-bench.json" \
    > "$out/smoke.json" 2> "$out/smoke.err"
echo "smoke exit $?"
"$py" - "$out/smoke.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for run in doc["data"]["runs"]:
    combos = run["combinations"]
    passed = sum(1 for c in combos if c["passed"])
    print(run["framework"], run["device"], run["status"], f"{passed}/{len(combos)} combinations",
          "ms/step", run.get("ms_per_step"), "peak device bytes", run.get("peak_device_bytes"))
PY
