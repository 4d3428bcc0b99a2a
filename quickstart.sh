#!/usr/bin/env bash
# One command: install dlsetup, build a venv with the PyTorch build that fits this machine's driver
# and every GPU (cpu when there is none), then diagnose it and smoke-test it.
#   ENV_DIR        where the PyTorch venv goes (default: .venv-pytorch); an existing venv there is
#                  replaced, only once the new one is complete
#   TARGET         pytorch, tensorflow or both (default: pytorch)
#   CREATE_ARGS    more options for dlsetup create, e.g. "--cuda 12.4 --gpu-arch 6.1"
#   TORCH_INDEX_URL  PyTorch's wheel index when download.pytorch.org is out of reach (a mirror, or
#                  https://pypi.org/simple with CREATE_ARGS="--torch-version 2.13")
# pip's find-links (PIP_FIND_LINKS: a directory of wheels already on disk) are offered to uv too.
set -euo pipefail
cd "$(dirname "$0")"
ENV_DIR="${ENV_DIR:-.venv-pytorch}"
if [[ -n "${PIP_FIND_LINKS:-}" && -z "${UV_FIND_LINKS:-}" ]]; then
    export UV_FIND_LINKS="$PIP_FIND_LINKS"
fi
INDEX_ARGS=()
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    INDEX_ARGS=(--torch-index-url "$TORCH_INDEX_URL")
fi
python3 -m venv .venv
.venv/bin/pip install -q -e .
# shellcheck disable=SC2086 # CREATE_ARGS is a list of options
.venv/bin/dlsetup create "${TARGET:-pytorch}" --backend venv --prefix "$ENV_DIR" --force \
    --no-smoke "${INDEX_ARGS[@]}" ${CREATE_ARGS:-}
.venv/bin/dlsetup doctor --python "$ENV_DIR/bin/python" || true   # findings are information here
.venv/bin/dlsetup smoke --python "$ENV_DIR/bin/python"            # smoke decides the exit status
