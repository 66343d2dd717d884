#!/usr/bin/env bash
# Install mcphive and everything it needs into .venv/ at the repository root.
# torch comes first, pinned: an unpinned torch pulled in by a dependency would be a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# llama-cpp-python builds from source once (~8 min on 2 cores); pip's wheel cache makes later installs take seconds.
.venv/bin/python -m pip install --quiet -e ".[local,dev]"
touch .venv/.installed
