#!/usr/bin/env bash
# Runs every test: the Swift suites (swift test), the Python oracle tests (pytest against
# nibabel, Pillow, scipy, safetensors) and the trainer's tests, after installing what a fresh
# machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --python --train

echo "== swift test" >&2
mkdir -p .build
set +e
# Per-test "passed" lines are hidden; failures, issues and the summary stay visible.
swift test 2>&1 | tee .build/swift-test.log | grep -vE '^\[[0-9]+/[0-9]+\]|Test .*(started|passed after)|^Test (Suite|Case) .*(started|passed)'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || { echo "swift test failed (full log: .build/swift-test.log)" >&2; exit "$rc"; }

echo "== pytest" >&2
swift build -c release >/dev/null
MEDPREP_BIN="$PWD/.build/release/medprep" .venv/bin/python -m pytest -q -p no:cacheprovider tests/python tools/trainer/tests "$@"
