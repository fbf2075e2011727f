#!/usr/bin/env bash
# Runs every test: the Swift suites (swift test), the Python oracle tests (pytest against
# nibabel, Pillow, scipy, safetensors), the trainer's tests and a short run of every fuzz target,
# after installing what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --python --train

echo "== swift test" >&2
mkdir -p .build
set +e
# Per-test "passed" lines are hidden; failures, issues and the summary stay visible.
swift test 2>&1 | tee .build/swift-test.log \
  | awk '/Test run with/ || !(/^\[[0-9]+\/[0-9]+\]/ || /Test .*(started|passed after)/ || /^Test (Suite|Case) .*(started|passed)/)'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || { echo "swift test failed (full log: .build/swift-test.log)" >&2; exit "$rc"; }

echo "== pytest" >&2
swift build -c release >/dev/null
export MEDPREP_BIN="$PWD/.build/release/medprep"
# Two runs: each suite has its own conftest.py.
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider tests/python "$@"
rc_oracle=$?
echo "== pytest (trainer)" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider tools/trainer/tests "$@"
rc_trainer=$?
# The libFuzzer targets (docs/fuzzing.md): built with the address sanitizer and run ~6 s each, so
# they keep building and running; long runs are tools/fuzz/run.py --seconds N.
echo "== fuzz smoke" >&2
.venv/bin/python tools/fuzz/run.py --smoke
rc_fuzz=$?
set -e
[ "$rc_oracle" -eq 0 ] && [ "$rc_trainer" -eq 0 ] && [ "$rc_fuzz" -eq 0 ]
