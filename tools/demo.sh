#!/usr/bin/env bash
# The README's run command: installs what a fresh machine lacks, builds medprep (release) and
# runs the main job end to end on built-in sample data, writing into ./demo-out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
echo "== building medprep (release)" >&2
swift build -c release 2>&1 | grep -E "error|warning: unre|Compiling medprep|Build complete" >&2 || true
BIN="$PWD/.build/release/medprep"
[ -x "$BIN" ] || { echo "build failed" >&2; exit 1; }
if "$BIN" help demo >/dev/null 2>&1; then
  exec "$BIN" demo --out demo-out "$@"
fi
# Until `medprep demo` exists: describe the sample images and compute distance maps for a mask.
mkdir -p demo-out
echo "== medprep info on sample volumes and images" >&2
"$BIN" info Tests/Fixtures/nifti/aff_oblique.nii Tests/Fixtures/nifti/gz_int16.nii.gz \
  Tests/Fixtures/nifti/pair_int16.hdr
"$BIN" info --json Tests/Fixtures/nifti/*.nii.gz > demo-out/info.json
echo "wrote demo-out/info.json" >&2
if "$BIN" help maps >/dev/null 2>&1; then
  echo "== medprep maps on a sample mask" >&2
  "$BIN" maps Tests/Fixtures/maps/sample_mask.nii.gz --out demo-out/maps --sdf --rrw --force
fi
