#!/usr/bin/env bash
# One command: install dlsetup with PyTorch into .venv, then diagnose this machine and smoke-test it.
set -euo pipefail
cd "$(dirname "$0")"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
python3 -m venv .venv
.venv/bin/pip install -q -e . "$TORCH_SPEC"
.venv/bin/dlsetup doctor || true   # findings are information here; smoke decides the exit status
.venv/bin/dlsetup smoke
