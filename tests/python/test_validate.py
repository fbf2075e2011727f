"""`medprep validate`: the defect fixtures, the clean synthetic datasets, the report schema, exit codes.

Fixtures: `medprep synth DIR --defects` writes SynthDefects' datasets (defects3d, defects2d,
defects-inferred), each with an expected.json: {"cases": {id: [code]}, "dataset": [code]}. Every
defective case must yield exactly its code, clean cases nothing.

Oracles that are not medprep: jsonschema for the report, and nibabel + numpy + scipy.ndimage recount
the numbers behind several findings (undeclared voxels, 0/255 voxels, NaN count, ordinal contact
faces, small components with 26-connectivity, holes with binary_fill_holes, the shifted origin).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import ROOT

SCHEMA = json.loads((ROOT / "Schemas" / "validation-report.schema.json").read_text())
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def defects(tmp_path_factory, medprep) -> dict[str, Path]:
    if "--defects" not in medprep("synth", "--help").stdout:
        pytest.skip("this medprep's synth command has no --defects flag (SynthDefects.write is not wired in)")
    out = tmp_path_factory.mktemp("defects")
    proc = medprep("synth", out, "--defects", timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    found = {p.parent.name: p.parent for p in out.rglob("expected.json")}
    assert {"defects3d", "defects2d", "defects-inferred"} <= set(found), found
    return found


def run_validate(medprep, dataset: Path, tmp: Path, *extra) -> tuple[int, dict, str]:
    report = tmp / f"{dataset.name}-report.json"
    proc = medprep("validate", dataset, "--json", report, *extra, timeout=TIMEOUT_S)
    assert proc.returncode in (0, 1), f"rc {proc.returncode}: {proc.stderr}"
    doc = json.loads(report.read_text())
    jsonschema.validate(doc, SCHEMA)
    return proc.returncode, doc, proc.stdout


def codes_by_case(doc) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in doc["findings"]:
        if f["case"] is not None:
            out.setdefault(f["case"], set()).add(f["code"])
    return out


@pytest.mark.parametrize("name", ["defects3d", "defects2d", "defects-inferred"])
def test_each_defect_yields_exactly_its_code(defects, medprep, tmp_path, name):
    ds = defects[name]
    expected = json.loads((ds / "expected.json").read_text())
    rc, doc, text = run_validate(medprep, ds, tmp_path)
    got = codes_by_case(doc)
    for case, codes in expected["cases"].items():
        assert got.get(case, set()) == set(codes), (case, [f["message"] for f in doc["findings"] if f["case"] == case])
    assert set(got) <= set(expected["cases"]), set(got) - set(expected["cases"])
    assert {f["code"] for f in doc["findings"] if f["case"] is None} == set(expected["dataset"])
    has_errors = any(f["severity"] == "error" for f in doc["findings"])
    assert rc == (1 if has_errors else 0)
    assert doc["summary"]["passed"] == (not has_errors)
    # The text report groups by code with counts.
    for code in {f["code"] for f in doc["findings"]}:
        assert f"  {code} (" in text


def test_every_code_is_covered_and_documented(defects):
    schema_codes = set(SCHEMA["$defs"]["code"]["enum"])
    covered = set()
    for ds in defects.values():
        e = json.loads((ds / "expected.json").read_text())
        covered |= {c for codes in e["cases"].values() for c in codes} | set(e["dataset"])
    assert schema_codes - covered == {"no-cases"}
    doc = (ROOT / "docs" / "validate.md").read_text()
    for code in schema_codes:
        assert f"`{code}`" in doc, code


def finding(doc, case, code):
    hits = [f for f in doc["findings"] if f["case"] == case and f["code"] == code]
    assert len(hits) == 1, hits
    return hits[0]


def mask_of(ds: Path, case: str) -> np.ndarray:
    [path] = list((ds / "labelsTr").glob(case + ".nii*"))
    return np.asanyarray(nib.load(str(path)).dataobj)


def test_numbers_match_an_independent_count(defects, medprep, tmp_path):
    ds = defects["defects3d"]
    _, doc, _ = run_validate(medprep, ds, tmp_path)

    m = mask_of(ds, "labels-undeclared")
    assert finding(doc, "labels-undeclared", "labels-undeclared")["details"]["voxels"] == int(np.sum(m == 7))

    m = mask_of(ds, "mask-0-255")
    f = finding(doc, "mask-0-255", "mask-0-255")
    assert f["details"]["voxels"] == int(np.sum(m == 255)) and f["fix"].startswith("remap 255 to 1")

    img = nib.load(str(ds / "imagesTr" / "image-nonfinite_0000.nii.gz")).get_fdata()
    d = finding(doc, "image-nonfinite", "image-nonfinite")["details"]
    assert d["nan"] == int(np.isnan(img).sum()) and d["pos_inf"] == int(np.isposinf(img).sum())

    # Ordinal contact: faces between classes two or more apart, counted with numpy.
    m = mask_of(ds, "ordinal-contact").astype(int)
    faces = sum(int(np.sum(np.abs(np.diff(m, axis=a)) >= 2)) for a in range(3))
    transitions = sum(int(np.sum(np.diff(m, axis=a) != 0)) for a in range(3))
    d = finding(doc, "ordinal-contact", "ordinal-contact")["details"]
    assert (d["faces"], d["transitions"]) == (faces, transitions)
    per_slice = [int(np.sum(np.abs(np.diff(m[:, :, z], axis=a)) >= 2)) for z in range(m.shape[2]) for a in range(2)]
    assert d["worst_slice_faces"] >= max(per_slice)

    # Small components: scipy with full (26) connectivity.
    m = mask_of(ds, "small-component")
    lab, n = ndimage.label(m == 1, structure=np.ones((3, 3, 3)))
    sizes = sorted(int(s) for s in np.bincount(lab.ravel())[1:] if s < 10)
    assert finding(doc, "small-component", "small-component")["details"]["sizes"] == sizes

    # Holes: voxels enclosed by the layer {class >= k}, for any k (background paths 6-connected).
    m = mask_of(ds, "ordinal-hole")
    holes = np.zeros(m.shape, bool)
    for k in range(1, 5):
        layer = m >= k
        holes |= ndimage.binary_fill_holes(layer) & ~layer
    assert finding(doc, "ordinal-hole", "ordinal-hole")["details"]["voxels"] == int(holes.sum())

    # Origin mismatch in mm, from the two affines.
    a = nib.load(str(ds / "imagesTr" / "origin-mismatch_0000.nii.gz")).affine
    b = nib.load(str(ds / "labelsTr" / "origin-mismatch.nii.gz")).affine
    d = finding(doc, "origin-mismatch", "origin-mismatch")["details"]
    assert d["distance_mm"] == pytest.approx(float(np.linalg.norm(a[:3, 3] - b[:3, 3])), abs=1e-4)


def test_clean_synthetic_datasets_have_no_warnings_or_errors(medprep, tmp_path):
    out = tmp_path / "synth"
    proc = medprep("synth", out, "--cases3d", 3, "--cases2d", 4, "--size3d", "48,48,12", timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    datasets = sorted(p.parent for p in out.rglob("manifest.yaml"))
    assert len(datasets) == 3
    for ds in datasets:
        report = tmp_path / f"{ds.name}.json"
        proc = medprep("validate", ds, "--json", report, "--strict", timeout=TIMEOUT_S)
        doc = json.loads(report.read_text())
        jsonschema.validate(doc, SCHEMA)
        bad = [f for f in doc["findings"] if f["severity"] in ("error", "warning")]
        assert not bad, (ds.name, bad)
        assert proc.returncode == 0, proc.stdout


def test_strict_and_usage_exit_codes(defects, medprep, tmp_path):
    ds = defects["defects-inferred"]  # info findings only
    assert medprep("validate", ds).returncode == 0
    assert medprep("validate", ds, "--strict").returncode == 0
    assert medprep("validate", ds, "--connectivity", "5").returncode == 2
    assert medprep("validate", tmp_path / "missing").returncode == 2
    assert medprep("validate", ds, "--manifest", tmp_path / "none.yaml").returncode == 2
    # Argument-parser usage errors too (unknown flag, missing value, no dataset).
    assert medprep("validate", ds, "--no-such-flag").returncode == 2
    assert medprep("validate", ds, "--threads").returncode == 2
    assert medprep("validate").returncode == 2
    # Warnings only: exit 0, and 1 with --strict.
    two = defects["defects2d"]
    only_warnings = tmp_path / "warn"
    (only_warnings / "images").mkdir(parents=True)
    (only_warnings / "masks").mkdir()
    for case in ["clean-1", "clean-2", "small-component"]:
        for sub, ext in [("images", "png"), ("masks", "png")]:
            (only_warnings / sub / f"{case}.{ext}").write_bytes((two / sub / f"{case}.{ext}").read_bytes())
    (only_warnings / "manifest.yaml").write_text((two / "manifest.yaml").read_text())
    assert medprep("validate", only_warnings).returncode == 0
    assert medprep("validate", only_warnings, "--strict").returncode == 1


def test_errors_only_and_thumbnails(defects, medprep, tmp_path):
    ds = defects["defects2d"]
    _, full, _ = run_validate(medprep, ds, tmp_path)
    thumbs = tmp_path / "thumbs"
    _, quick, _ = run_validate(medprep, ds, tmp_path, "--errors-only", "--thumbnails", thumbs)
    assert quick["options"]["scope"] == "errors"
    key = lambda d: sorted((f["case"] or "", f["code"]) for f in d["findings"] if f["severity"] == "error")
    assert key(quick) == key(full) and all(f["severity"] == "error" for f in quick["findings"])
    flagged = {c["id"] for c in quick["cases"] if c["status"] in ("error", "warning")}
    assert flagged and {p.stem for p in thumbs.glob("*.png")} == flagged
    for p in thumbs.glob("*.png"):
        with Image.open(p) as im:
            assert im.mode == "RGB" and min(im.size) >= 48


def test_convert_parts_validate_only_their_own_cases(defects, medprep, tmp_path):
    """convert --part i/n runs the error-level checks on its own cases only: over all parts the
    case-level errors add up to those of a whole-dataset run (defects2d has no pairing problems)."""
    import re
    ds = defects["defects2d"]

    def errors(*extra):
        proc = medprep("convert", ds, "--out", tmp_path / "out", *extra)
        m = re.search(r"validation found (\d+) error", proc.stderr)
        return int(m.group(1)) if m else 0

    whole = errors()
    assert whole >= 2
    assert errors("--part", "0/2") + errors("--part", "1/2") == whole
