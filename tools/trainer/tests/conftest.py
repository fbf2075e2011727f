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
    # '3d' stores its maps densely (tests compare them with the safetensors library); the
    # '3d-<storage>' copies hold the same slices in the other storage modes.
    variants = {"3d": "storage: dense", "3d-online": "storage: online", "3d-compact": "storage: compact",
                "3d-compact16": "storage: compact, dtype: float16"}
    for key, spec in variants.items():
        d = root / f"synth3d-{key}"
        shutil.copytree(src / "synth3d", d)
        m = d / "manifest.yaml"
        text = m.read_text()
        assert "scales: [1, 2]}" in text
        m.write_text(text.replace("scales: [1, 2]}", f"scales: [1, 2], {spec}}}"))
    out = {}
    datasets = [(k, root / f"synth3d-{k}") for k in variants] + [("2d", src / "synth2d"), ("2dc", src / "synth2d-colour")]
    for key, path in datasets:
        dst = root / f"out-{key}"
        subprocess.run([medprep, "convert", str(path), "--out", str(dst), "--force"], check=True, capture_output=True)
        out[key] = str(dst / "index.json")
    return out


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flips with deep-supervision maps.*")
        yield
