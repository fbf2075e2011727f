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
def binary() -> Path:
    """Path of the medprep binary under test (fails the test when it is not built)."""
    try:
        return medprep_binary()
    except RuntimeError as e:
        pytest.fail(str(e))


def limit_address_space():
    """preexec_fn for hostile-input runs: a reader that allocates what a header claims fails
    instead of swapping the machine (MEDPREP_TEST_AS_LIMIT_GB, default 16, 0 = off)."""
    gb = int(os.environ.get("MEDPREP_TEST_AS_LIMIT_GB", "16"))
    if gb > 0:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (gb << 30, gb << 30))


def check_error_object(d: dict, path: Path) -> dict:
    """An `info --json` failure entry: {"path", "error": {"code", "message"}}, naming the file."""
    assert set(d) >= {"path", "error"}, f"{path.name}: expected an error object, got {json.dumps(d)[:500]}"
    assert d["path"] == str(path)
    err = d["error"]
    assert isinstance(err.get("code"), str) and err["code"], err
    assert isinstance(err.get("message"), str) and err["message"], err
    assert path.name in err["message"], f"the message does not name the file: {err['message']!r}"
    return err


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
