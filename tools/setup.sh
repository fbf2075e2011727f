#!/usr/bin/env bash
# Installs what a fresh machine lacks: Debian -dev packages for the C libraries medprep links,
# and a Python venv (.venv) for the oracle tests and benchmarks. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(zlib1g-dev libdeflate-dev libpng-dev libjpeg62-turbo-dev libssl-dev pkg-config)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python side, when asked: --python (oracles for the tests), --train (PyTorch trainer), both.
want_python=0; want_train=0
for a in "$@"; do
  case "$a" in --python) want_python=1 ;; --train) want_train=1 ;; esac
done
if [ "$want_python" = 1 ] || [ "$want_train" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
fi
if [ "$want_python" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  stamp=.venv/.requirements-test.sha
  want=$(sha256sum tools/requirements-test.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python test requirements into .venv" >&2
    .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements-test.txt
    echo "$want" > "$stamp"
  fi
fi
if [ "$want_train" = 1 ] && [ -f tools/trainer/pyproject.toml ]; then
  stamp=.venv/.requirements-train.sha
  want=$(cat tools/requirements-train.txt tools/trainer/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/medprep-train ]; then
    echo "setup: installing the trainer (PyTorch) into .venv; the first time takes a few minutes" >&2
    .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements-train.txt
    echo "$want" > "$stamp"
  fi
fi
