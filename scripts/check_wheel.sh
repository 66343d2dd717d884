#!/usr/bin/env bash
# Build the wheel, install it into a clean environment (no source tree on the path) and run
# `mcphive doctor` and one real task from it: proves prompts, agent specs, migrations and the
# example project ship inside the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m build --wheel --outdir "$work/dist" . >/dev/null
python3 -m venv "$work/venv"
# Reuse the dependencies already installed in .venv (a plain path entry: .venv's editable-install hook does not run).
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
clean_site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" > "$clean_site/_mcphive_deps.pth"
"$work/venv/bin/python" -m pip install --quiet --no-deps "$work"/dist/mcphive-*.whl
cd "$work"
export MCPHIVE_DATA_DIR="$work/data" OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
where=$("$work/venv/bin/python" -c 'import mcphive, pathlib; print(pathlib.Path(mcphive.__file__).parent)')
case "$where" in "$work"/venv/*) ;; *) echo "mcphive imported from $where, not from the wheel" >&2; exit 1;; esac
"$work/venv/bin/mcphive" doctor
"$work/venv/bin/python" - <<'PY'
import shutil, pathlib
from mcphive.sample import sample_project_path
shutil.copytree(sample_project_path(), pathlib.Path("ws"))
PY
"$work/venv/bin/mcphive" run "scan the project for hard-coded secrets" --workspace ws --agent security
"$work/venv/bin/mcphive" history -n 1
