#!/usr/bin/env bash
# The README's run command: installs what a fresh machine lacks (C libraries, and PyTorch for the
# trainer in .venv), builds medprep (release) and runs the main job end to end on the built-in
# synthetic data: synth -> validate -> convert -> verify -> inspect (previews) -> train.
# Everything is written into ./demo-out (or the folder given with --out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --train
echo "== building medprep (release)" >&2
swift build -c release 2>&1 | grep -E "error|Build complete" >&2 || true
BIN="$PWD/.build/release/medprep"
[ -x "$BIN" ] || { echo "build failed" >&2; exit 1; }
exec "$BIN" demo --out demo-out "$@"
