"""`medprep info --json` on NIfTI, checked against nibabel read live (the oracle), and the hostile files.

Fixtures come from tools/fixtures/make_nifti_fixtures.py:
  Tests/Fixtures/nifti/expected.json          valid files, keyed by file name (pairs: the .hdr)
  Tests/Fixtures/hostile/expected_errors.json malformed files -> {"code", "also_ok", "why"}

The binary is found by conftest (MEDPREP_BIN, else .build/release, else .build/debug). Tests that do
not need it (fixture inventory, expected.json against live nibabel) run without it.

Every medprep run has a 30 s timeout; hostile-file runs also get an address-space limit
(MEDPREP_TEST_AS_LIMIT_GB, default 16, 0 = none) so a reader that allocates what a hostile header
claims fails here instead of swapping the machine.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.openers import ImageOpener

from conftest import FIXTURES, check_error_object, limit_address_space

NIFTI = FIXTURES / "nifti"
HOSTILE = FIXTURES / "hostile"
EXPECTED: dict = json.loads((NIFTI / "expected.json").read_text())
HOSTILE_SPEC: dict = json.loads((HOSTILE / "expected_errors.json").read_text())
TIMEOUT_S = 30
FORMAT_NAMES = {
    nib.Nifti1Image: "nifti1", nib.Nifti1Pair: "nifti1-pair",
    nib.Nifti2Image: "nifti2", nib.Nifti2Pair: "nifti2-pair",
}
STAT_REL = 1e-6
AFFINE_ABS = 1e-5

logging.getLogger("nibabel.global").setLevel(logging.ERROR)  # header "fixes" on load are expected


# ----------------------------------------------------------------------------------------------
# oracle: nibabel, live
# ----------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def nibabel_view(path: Path) -> dict:
    """What medprep info must report for `path`, computed from nibabel now."""
    img = nib.load(str(path))
    with ImageOpener(str(path)) as f:
        # the header as stored (nibabel resets slope/inter on img.header after loading)
        file_hdr = type(img.header).from_fileobj(f)
    dtype = img.get_data_dtype()
    rgb = dtype.fields is not None
    raw = np.asanyarray(img.dataobj.get_unscaled()).reshape(-1, order="F")
    if rgb:
        values = np.stack([raw[c] for c in dtype.names], axis=1).reshape(-1).astype(np.float64)
        raw_bytes = np.ascontiguousarray(raw).tobytes()
    else:
        values = img.get_fdata(dtype=np.float64).reshape(-1, order="F")
        raw_bytes = raw.astype(dtype.newbyteorder("<")).tobytes()
    finite = values[np.isfinite(values)]
    slope, inter = file_hdr.get_slope_inter()
    scode, qcode = int(file_hdr["sform_code"]), int(file_hdr["qform_code"])
    return {
        "format": FORMAT_NAMES[type(img)],
        "dims": [int(d) for d in img.shape],
        "datatype": "rgb24" if rgb else dtype.name,
        "channels": 3 if rgb else 1,
        "spacing": [float(z) for z in img.header.get_zooms()],
        "affine": np.asarray(img.affine, dtype=np.float64),
        "affine_source": "sform" if scode else ("qform" if qcode else "pixdim"),
        "orientation": "".join(nib.aff2axcodes(img.affine)),
        "scl_slope": None if slope is None else float(slope),
        "scl_inter": None if inter is None else float(inter),
        "frames": int(np.prod(img.shape[3:])) if len(img.shape) > 3 else 1,
        "stats": {"min": float(finite.min()), "max": float(finite.max()),
                  "mean": float(finite.mean()), "std": float(finite.std()),
                  "count": int(finite.size), "nonfinite": int(values.size - finite.size)},
        "sha256": sha256_file(path),
        "raw_sha256": hashlib.sha256(raw_bytes).hexdigest(),
        "memory_bytes": int(values.size * (1 if rgb else dtype.itemsize)),
    }


def close(a, b, rel=STAT_REL, abs_=0.0) -> bool:
    return a is not None and b is not None and abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


# ----------------------------------------------------------------------------------------------
# running medprep
# ----------------------------------------------------------------------------------------------

def run(binary: Path, *args, limit_memory=False, timeout=TIMEOUT_S) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [str(binary), *map(str, args)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=limit_address_space if limit_memory else None)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` did not finish within {timeout} s")
    return proc, time.monotonic() - t0


def info_json(binary: Path, *paths, limit_memory=False, timeout=TIMEOUT_S):
    proc, _ = run(binary, "info", "--json", *paths, limit_memory=limit_memory, timeout=timeout)
    assert proc.returncode >= 0, (
        f"medprep was killed by signal {-proc.returncode} on {[str(p) for p in paths]}\n{proc.stderr[-3000:]}")
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"medprep info --json printed invalid JSON ({e}):\n{proc.stdout[:3000]}\n"
                             f"stderr:\n{proc.stderr[-2000:]}")
    return proc, doc


def nifti_path(name: str) -> Path:
    return NIFTI / name


# ----------------------------------------------------------------------------------------------
# the fixtures themselves (no binary needed)
# ----------------------------------------------------------------------------------------------

def test_every_nifti_fixture_is_described():
    covered = {"expected.json"}
    for key, e in EXPECTED.items():
        covered.add(key)
        if "data_file" in e:
            covered.add(e["data_file"])
    on_disk = {p.name for p in NIFTI.iterdir()}
    assert on_disk - covered == set(), "files without an expected.json entry"
    assert covered - on_disk == set(), "expected.json names missing files"


def test_every_hostile_file_has_an_expected_error():
    inputs = set(HOSTILE_SPEC)
    # the short .img of pair_short_img.hdr and the data of the Analyze pair, not inputs themselves
    companions = {"pair_short_img.img", "analyze75.img"}
    on_disk = {p.name for p in HOSTILE.iterdir()} - {"expected_errors.json"}
    assert on_disk - inputs - companions == set()
    assert {n for n in inputs if not (HOSTILE / n).exists()} == set()
    codes = {"truncated", "badMagic", "badHeader", "unsupported", "corruptCompression",
             "tooLarge", "fileNotFound", "ioFailure", "corruptImage", "mismatch"}
    for name, spec in HOSTILE_SPEC.items():
        assert spec["code"] in codes and set(spec.get("also_ok", [])) <= codes, name
        assert spec["why"], name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_json_matches_live_nibabel(name):
    """expected.json (read by the Swift tests) must still be what this nibabel says."""
    e, live = EXPECTED[name], nibabel_view(nifti_path(name))
    for k in ("format", "dims", "datatype", "channels", "affine_source", "orientation", "raw_sha256"):
        assert e[k] == live[k], k
    assert e["file_sha256"] == live["sha256"], "fixture file changed after expected.json was written"
    assert np.allclose(e["affine"], live["affine"], rtol=0, atol=1e-12)
    assert np.allclose(e["spacing"], live["spacing"], rtol=0, atol=1e-12)
    assert (e["scl_slope"], e["scl_inter"]) == (live["scl_slope"], live["scl_inter"])
    for k in ("min", "max", "mean", "std"):
        assert close(e["stats"][k], live["stats"][k], rel=1e-12, abs_=1e-12), k
    assert e["nonfinite"] == live["stats"]["nonfinite"]


# ----------------------------------------------------------------------------------------------
# medprep info on every valid fixture
# ----------------------------------------------------------------------------------------------

def check_against_nibabel(got: dict, path: Path) -> None:
    want = nibabel_view(path)
    name = path.name
    assert "error" not in got, f"{name}: medprep failed: {got.get('error')}"
    assert got["path"] == str(path)
    for k in ("format", "dims", "datatype", "channels", "affine_source", "orientation", "frames", "sha256",
              "memory_bytes"):
        assert got[k] == want[k], f"{name}: {k} is {got[k]!r}, nibabel says {want[k]!r}"
    assert len(got["spacing"]) == len(want["spacing"]), f"{name}: spacing {got['spacing']} vs {want['spacing']}"
    assert np.allclose(got["spacing"], want["spacing"], rtol=1e-6, atol=1e-9), \
        f"{name}: spacing {got['spacing']} vs nibabel {want['spacing']}"
    aff = np.asarray(got["affine"], dtype=np.float64)
    assert aff.shape == (4, 4), f"{name}: affine is not 4x4 row-major"
    assert np.allclose(aff, want["affine"], rtol=0, atol=AFFINE_ABS), \
        f"{name}: affine\n{aff}\nnibabel:\n{want['affine']}"
    for k in ("scl_slope", "scl_inter"):
        g, w = got[k], want[k]
        if want["datatype"] == "rgb24" and g is None:
            continue  # scaling has no meaning for RGB; nibabel never applies it there
        assert (g is None) == (w is None) and (w is None or close(g, w, abs_=1e-12)), \
            f"{name}: {k} is {g!r}, nibabel header says {w!r}"
    gs, ws = got["stats"], want["stats"]
    assert gs["count"] == ws["count"] and gs["nonfinite"] == ws["nonfinite"], \
        f"{name}: count/nonfinite {gs['count']}/{gs['nonfinite']} vs {ws['count']}/{ws['nonfinite']}"
    scale = max(abs(ws["min"]), abs(ws["max"]), 1e-300)
    for k in ("min", "max", "mean", "std"):
        assert close(gs[k], ws[k], abs_=1e-12 * scale), f"{name}: stats.{k} is {gs[k]!r}, nibabel {ws[k]!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_matches_nibabel(binary, name):
    path = nifti_path(name)
    proc, doc = info_json(binary, path)
    assert isinstance(doc, dict), f"one file must give one JSON object, got {type(doc).__name__}"
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    check_against_nibabel(doc, path)


def test_info_many_files_gives_array_in_argument_order(binary):
    paths = [nifti_path(n) for n in sorted(EXPECTED, reverse=True)]  # not alphabetical on purpose
    proc, doc = info_json(binary, *paths, timeout=4 * TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert isinstance(doc, list) and len(doc) == len(paths)
    assert [d["path"] for d in doc] == [str(p) for p in paths]
    for d, p in zip(doc, paths):
        check_against_nibabel(d, p)


def test_info_same_file_twice(binary):
    p = nifti_path("dtype_int16.nii")
    _, doc = info_json(binary, p, p)
    assert isinstance(doc, list) and len(doc) == 2 and doc[0] == doc[1]


def test_info_text_mode_succeeds(binary):
    paths = [nifti_path(n) for n in sorted(EXPECTED)]
    proc, _ = run(binary, "info", *paths, timeout=4 * TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip(), "text mode printed nothing"


# ----------------------------------------------------------------------------------------------
# hostile files
# ----------------------------------------------------------------------------------------------

HOSTILE_NAMES = sorted(HOSTILE_SPEC)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_fails_cleanly(binary, name):
    path = HOSTILE / name
    t0 = time.monotonic()
    proc, doc = info_json(binary, path, limit_memory=True)
    assert time.monotonic() - t0 < TIMEOUT_S
    assert proc.returncode > 0, f"{name}: exit status {proc.returncode}, must be non-zero"
    assert isinstance(doc, dict), f"one file must give one JSON object, got {type(doc).__name__}"
    check_error_object(doc, path)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_error_code(binary, name):
    """The code the reader picks (codes in expected_errors.json are to be reconciled with the reader)."""
    path = HOSTILE / name
    _, doc = info_json(binary, path, limit_memory=True)
    err = check_error_object(doc, path)
    spec = HOSTILE_SPEC[name]
    ok = [spec["code"], *spec.get("also_ok", [])]
    assert err["code"] in ok, f"{name}: code {err['code']!r}, expected one of {ok} ({spec['why']}); " \
                              f"message: {err['message']!r}"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_text_mode_names_file_on_stderr(binary, name):
    path = HOSTILE / name
    proc, _ = run(binary, "info", path, limit_memory=True)
    assert proc.returncode > 0, f"{name}: exit status {proc.returncode} (negative = killed by a signal)"
    lines = [ln for ln in proc.stderr.splitlines() if str(path) in ln]
    assert lines, f"no stderr line names {path}:\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_good_files_still_reported_next_to_hostile(binary, name):
    good1, good2 = nifti_path("dtype_int16.nii"), nifti_path("gz_float32.nii.gz")
    bad = HOSTILE / name
    proc, doc = info_json(binary, good1, bad, good2, limit_memory=True)
    assert proc.returncode > 0, "a failed file must make the exit status non-zero"
    assert isinstance(doc, list) and len(doc) == 3, f"expected an array of 3, got {json.dumps(doc)[:500]}"
    check_against_nibabel(doc[0], good1)
    check_error_object(doc[1], bad)
    check_against_nibabel(doc[2], good2)


@pytest.mark.parametrize("name", ["gzip_bad_crc_long.nii.gz", "gzip_zeroed_middle.nii.gz"])
def test_corrupt_gzip_names_the_crc(binary, name):
    """Corruption Python's gzip refuses is refused, naming the file and the CRC, also when the
    stream inflates to more than the header needs (the bytes past it are still checked)."""
    import gzip
    import zlib
    path = HOSTILE / name
    with pytest.raises((OSError, zlib.error, EOFError)):
        gzip.decompress(path.read_bytes())
    _, doc = info_json(binary, path, limit_memory=True)
    err = check_error_object(doc, path)
    assert err["code"] == "corruptCompression" and "CRC-32" in err["message"], err


def test_analyze_is_refused_by_name(binary):
    path = HOSTILE / "analyze75.hdr"
    assert isinstance(nib.load(str(path)), nib.AnalyzeImage)  # nibabel reads it as (SPM) Analyze
    _, doc = info_json(binary, path, limit_memory=True)
    err = check_error_object(doc, path)
    assert err["code"] == "unsupported" and "Analyze 7.5" in err["message"], err


def test_all_hostile_files_in_one_call(binary):
    paths = [HOSTILE / n for n in HOSTILE_NAMES] + [nifti_path("be_int16.nii")]
    proc, doc = info_json(binary, *paths, limit_memory=True, timeout=2 * TIMEOUT_S)
    assert proc.returncode > 0
    assert isinstance(doc, list) and len(doc) == len(paths)
    for d, p in zip(doc[:-1], paths[:-1]):
        check_error_object(d, p)
    check_against_nibabel(doc[-1], paths[-1])


def test_missing_file(binary, tmp_path):
    path = tmp_path / "does_not_exist.nii.gz"
    proc, doc = info_json(binary, path)
    assert proc.returncode > 0
    err = check_error_object(doc, path)
    assert err["code"] == "fileNotFound"


def test_gzip_with_more_data_than_needed_still_reads(binary, tmp_path):
    """The other side of the CRC check: a valid stream holding bytes past the image data (and a
    correct CRC) is read as nibabel reads it."""
    import gzip
    src = nifti_path("dtype_int16.nii")
    path = tmp_path / "trailing.nii.gz"
    path.write_bytes(gzip.compress(src.read_bytes() + bytes(range(256)) * 64, mtime=0))
    _, doc = info_json(binary, path)
    assert "error" not in doc, doc
    plain = info_json(binary, src)[1]
    for key in ("dims", "datatype", "stats", "affine"):
        assert doc[key] == plain[key], key
    assert np.array_equal(np.asarray(doc["affine"]), nib.load(str(path)).affine)
