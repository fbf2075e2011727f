"""Shared pytest fixtures: locate the medprep binary and the committed fixtures."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "Fixtures"


def medprep_binary() -> Path:
    env = os.environ.get("MEDPREP_BIN")
    if env:
        return Path(env)
    for cand in (ROOT / ".build" / "release" / "medprep", ROOT / ".build" / "debug" / "medprep"):
        if cand.exists():
            return cand
    raise RuntimeError("medprep binary not found: build it (swift build) or set MEDPREP_BIN")


@pytest.fixture(scope="session")
def medprep():
    """Callable running medprep with arguments; returns CompletedProcess (text)."""
    binary = medprep_binary()

    def run(*args, check=False, timeout=600):
        return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                              check=check, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def medprep_json(medprep):
    """Runs medprep with --json-producing args and parses stdout."""

    def run(*args):
        proc = medprep(*args)
        try:
            return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr
        except json.JSONDecodeError as e:
            raise AssertionError(f"medprep {' '.join(map(str, args))} printed invalid JSON: {e}\n{proc.stdout[:2000]}")

    return run
