"""Shared fixtures: shards built once per session with the medprep binary ($MEDPREP_BIN)."""
import os
import shutil
import subprocess
import warnings

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def medprep_bin():
    b = os.environ.get("MEDPREP_BIN")
    if b:
        return b
    for cand in (os.path.join(REPO, ".build", "release", "medprep"), shutil.which("medprep")):
        if cand and os.path.exists(cand):
            return cand
    return None


@pytest.fixture(scope="session")
def medprep():
    b = medprep_bin()
    if not b or not os.path.exists(b):
        pytest.skip("no medprep binary: set MEDPREP_BIN (swift build -c release)")
    return b


@pytest.fixture(scope="session")
def shards(medprep, tmp_path_factory):
    """{'3d': index.json (4 cases, 3 folds, 80x80, ordinal, scales 1,2), '2d': grey PNG set,
    '2dc': colour JPEG set (3 channels)}."""
    root = tmp_path_factory.mktemp("medprep")
    src = root / "synth"
    subprocess.run([medprep, "synth", str(src), "--cases3d", "4", "--cases2d", "8", "--size3d", "32,32,6", "--force"],
                   check=True, capture_output=True)
    out = {}
    for key, name in (("3d", "synth3d"), ("2d", "synth2d"), ("2dc", "synth2d-colour")):
        dst = root / f"out-{key}"
        subprocess.run([medprep, "convert", str(src / name), "--out", str(dst), "--force"], check=True, capture_output=True)
        out[key] = str(dst / "index.json")
    return out


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flips with deep-supervision maps.*")
        yield
