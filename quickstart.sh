#!/usr/bin/env bash
# One command: install dlsetup, lock the PyTorch build that fits this machine's driver and every GPU
# (cpu when there is none) with torchvision and torchaudio of the same variant, build a venv from
# the lock, then diagnose it and smoke-test it (smoke checks that torch and torchvision load together).
#   ENV_DIR        where the PyTorch venv goes (default: .venv-pytorch); an existing venv there is
#                  replaced, only once the new one is complete
#   TARGET         pytorch, tensorflow or both (default: pytorch)
#   LOCK_ARGS      more options for dlsetup lock, e.g. "--cuda 12.4 --gpu-arch 6.1" or
#                  "--torch-version 2.13" (CREATE_ARGS, its older name, is read too)
#   TORCH_INDEX_URL  PyTorch's wheel index (or a mirror of it, ending in /whl/{variant}). Without
#                  it dlsetup probes PyTorch's index and, where it is out of reach, uses the
#                  indexes and wheel directories pip and uv are configured with, then PyPI.
#   ACCEPT_VARIANT where the sources hold no PyTorch build of the variant chosen but another one
#                  (PyPI's Linux torch is a CUDA build, about 3 GB of wheels, which also runs on
#                  a CPU): "any" (the default) locks it, labelled as what it is; a variant (cu130)
#                  locks only that one; empty stops before anything is downloaded.
set -euo pipefail
cd "$(dirname "$0")"
ENV_DIR="${ENV_DIR:-.venv-pytorch}"
ACCEPT_VARIANT="${ACCEPT_VARIANT-any}"
LOCK_ARGS="${LOCK_ARGS:-${CREATE_ARGS:-}}"
INDEX_ARGS=()
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    INDEX_ARGS=(--torch-index-url "$TORCH_INDEX_URL")
fi
ACCEPT_ARGS=()
if [[ -n "$ACCEPT_VARIANT" ]]; then
    ACCEPT_ARGS=(--accept-variant "$ACCEPT_VARIANT")
    echo "quickstart: where no PyTorch build of this machine's variant is reachable but another is" \
        "(PyPI's Linux torch: a CUDA build, about 3 GB with its CUDA libraries, that also runs" \
        "on a CPU), that one is locked and labelled as what it is (ACCEPT_VARIANT=$ACCEPT_VARIANT;" \
        "ACCEPT_VARIANT= stops instead, before anything is downloaded)."
else
    echo "quickstart: only a PyTorch build of this machine's variant is locked (ACCEPT_VARIANT is" \
        "empty): where none is reachable, the lock stops before anything is downloaded."
fi
python3 -m venv .venv
# pip warns once for each project a file:// index it is configured with lacks: not news here
.venv/bin/pip install -q -e . 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
LOCK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dlsetup-quickstart.XXXXXX")"
trap 'rm -rf "$LOCK_DIR"' EXIT
# the lock says what was chosen, why, and where each package comes from; nothing is downloaded yet
# shellcheck disable=SC2086 # LOCK_ARGS is a list of options
.venv/bin/dlsetup lock "${TARGET:-pytorch}" --backend venv --output "$LOCK_DIR" \
    "${INDEX_ARGS[@]}" "${ACCEPT_ARGS[@]}" $LOCK_ARGS
LOCKS=("$LOCK_DIR"/pylock.*.toml)
.venv/bin/dlsetup create --from-lock "${LOCKS[0]}" --prefix "$ENV_DIR" --force --no-smoke
.venv/bin/dlsetup doctor --python "$ENV_DIR/bin/python" || true   # findings are information here
.venv/bin/dlsetup smoke --python "$ENV_DIR/bin/python"            # smoke decides the exit status
