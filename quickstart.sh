#!/usr/bin/env bash
# One command: install dlsetup, build a venv with the PyTorch build that fits this machine's driver
# and every GPU (cpu when there is none), then diagnose it and smoke-test it.
#   ENV_DIR        where the PyTorch venv goes (default: .venv-pytorch); an existing venv there is
#                  replaced, only once the new one is complete
#   TARGET         pytorch, tensorflow or both (default: pytorch)
#   CREATE_ARGS    more options for dlsetup create, e.g. "--cuda 12.4 --gpu-arch 6.1"
set -euo pipefail
cd "$(dirname "$0")"
ENV_DIR="${ENV_DIR:-.venv-pytorch}"
python3 -m venv .venv
.venv/bin/pip install -q -e .
# shellcheck disable=SC2086 # CREATE_ARGS is a list of options
.venv/bin/dlsetup create "${TARGET:-pytorch}" --backend venv --prefix "$ENV_DIR" --force \
    --no-smoke ${CREATE_ARGS:-}
.venv/bin/dlsetup doctor --python "$ENV_DIR/bin/python" || true   # findings are information here
.venv/bin/dlsetup smoke --python "$ENV_DIR/bin/python"            # smoke decides the exit status
