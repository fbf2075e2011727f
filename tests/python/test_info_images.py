"""`medprep info --json` on PNG and JPEG, checked live against Pillow (the oracle), and the hostile files.

Fixtures come from tools/fixtures/make_image_fixtures.py:
  Tests/Fixtures/{png,jpeg}/expected.json                 valid files, keyed by file name
  Tests/Fixtures/{png,jpeg}/hostile/expected_errors.json  damaged files -> {"code", "also_ok", "why"}

The oracle, read now (not from expected.json): np.asarray(Image.open(f)) from Pillow, with 1-bit grey
(Pillow mode '1', bool) taken through convert('L') -> 0/255. Pillow reduces 16-bit colour and 16-bit
grey+alpha to 8 bits, so for those pypng's array is the oracle. Palette files give their indices.

The binary is found by conftest (MEDPREP_BIN, else .build/release, else .build/debug). Tests that do not
need it (fixture inventory, expected.json against live Pillow) run without it. Every run has a 30 s
timeout; hostile-file runs get an address-space limit (MEDPREP_TEST_AS_LIMIT_GB, default 16, 0 = none),
and the size-bomb files must also finish with a small peak RSS.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import png  # pypng
import pytest
from PIL import Image

from conftest import FIXTURES, check_error_object, limit_address_space

DIRS = {"png": FIXTURES / "png", "jpeg": FIXTURES / "jpeg"}
EXPECTED = {fmt: json.loads((d / "expected.json").read_text()) for fmt, d in DIRS.items()}
HOSTILE = {fmt: json.loads((d / "hostile" / "expected_errors.json").read_text()) for fmt, d in DIRS.items()}
VALID = [(fmt, name) for fmt in sorted(DIRS) for name in sorted(EXPECTED[fmt])]
HOSTILE_CASES = [(fmt, name) for fmt in sorted(DIRS) for name in sorted(HOSTILE[fmt])]
TIMEOUT_S = 30
STAT_REL = 1e-6
IDENTITY = np.eye(4)
# Files that claim gigabytes; medprep must refuse them without touching that much memory.
SIZE_BOMBS = {("png", "huge_ihdr.png"), ("png", "implausible_ihdr.png"),
              ("jpeg", "huge_sof.jpg"), ("jpeg", "implausible_sof.jpg")}
BOMB_MAX_RSS_MB = 256
# Chunks declaring 1 GiB in a few dozen bytes (libpng allocates a chunk before reading it):
# refused by medprep's chunk walk before libpng sees them.
CHUNK_BOMBS = sorted(n for n in HOSTILE["png"] if n.startswith("huge_") and n.endswith("_chunk.png"))
CHUNK_BOMB_MAX_RSS_MB = 64


# ----------------------------------------------------------------------------------------------
# oracle: Pillow (pypng for 16-bit colour), live
# ----------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pypng_array(path: Path) -> tuple[np.ndarray, dict]:
    w, h, rows, info = png.Reader(filename=str(path)).read()
    dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
    arr = np.array([np.asarray(r) for r in rows], dtype=dtype).reshape(h, w, info["planes"])
    return arr, info


def oracle_array(fmt: str, path: Path) -> np.ndarray:
    """The decoded pixels as [H, W, C] in their stored type."""
    if fmt == "png":
        raw, info = pypng_array(path)
        if info["bitdepth"] == 16 and info["planes"] > 1:
            return raw  # Pillow would give 8 bits here
    im = Image.open(path)
    if im.mode == "1":
        im = im.convert("L")
    arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr


def oracle_view(fmt: str, path: Path) -> dict:
    arr = oracle_array(fmt, path)
    h, w, c = arr.shape
    v = arr.astype(np.float64)
    return {
        "format": fmt,
        "dims": [w, h],
        "dtype": arr.dtype.name,
        "channels": c,
        "stats": {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()), "std": float(v.std()),
                  "count": int(v.size), "nonfinite": 0},
        "sha256": sha256_file(path),
        "raw_sha256": hashlib.sha256(np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes()).hexdigest(),
        "memory_bytes": int(arr.nbytes),
    }


def close(a, b, rel=STAT_REL, abs_=1e-9) -> bool:
    return a is not None and b is not None and abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


# ----------------------------------------------------------------------------------------------
# running medprep
# ----------------------------------------------------------------------------------------------

def run(binary: Path, *args, limit_memory=False, timeout=TIMEOUT_S):
    """Runs medprep; returns (returncode, stdout, stderr)."""
    cmd = [str(binary), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit_address_space if limit_memory else None)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"`{' '.join(cmd)}` did not finish within {timeout} s")
    return proc.returncode, out, err


# Peak RSS is measured by a small helper interpreter that forks medprep: a child forked from the
# (large) pytest process would count the parent's pages in ru_maxrss until it execs.
_RSS_HELPER = """
import json, os, resource, sys
gb = int(os.environ.get("MEDPREP_TEST_AS_LIMIT_GB", "16"))
pid = os.fork()
if pid == 0:
    if gb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (gb << 30, gb << 30))
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 1); os.dup2(fd, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def run_with_rss(binary: Path, *args, timeout=TIMEOUT_S):
    """Runs medprep under the address-space limit; returns (returncode, its own peak RSS in MiB)."""
    cmd = [sys.executable, "-c", _RSS_HELPER, str(binary), *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(map(str, [binary, *args]))}` did not finish within {timeout} s")
    result = json.loads(proc.stdout)
    return result["rc"], result["maxrss_kib"] / 1024.0  # ru_maxrss is in KiB on Linux


def info_json(binary: Path, *paths, limit_memory=False, timeout=TIMEOUT_S):
    rc, out, err = run(binary, "info", "--json", *paths, limit_memory=limit_memory, timeout=timeout)
    assert rc >= 0, f"medprep was killed by signal {-rc} on {[str(p) for p in paths]}\n{err[-3000:]}"
    try:
        doc = json.loads(out)
    except json.JSONDecodeError as e:
        raise AssertionError(f"medprep info --json printed invalid JSON ({e}):\n{out[:3000]}\nstderr:\n{err[-2000:]}")
    return rc, doc, err


def path_of(fmt: str, name: str) -> Path:
    return DIRS[fmt] / name


def hostile_path(fmt: str, name: str) -> Path:
    return DIRS[fmt] / "hostile" / name


# ----------------------------------------------------------------------------------------------
# the fixtures themselves (no binary needed)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(DIRS))
def test_every_fixture_is_described(fmt):
    d = DIRS[fmt]
    on_disk = {p.name for p in d.iterdir() if p.is_file()} - {"expected.json"}
    assert on_disk == set(EXPECTED[fmt])
    hostile = {p.name for p in (d / "hostile").iterdir()} - {"expected_errors.json"}
    assert hostile == set(HOSTILE[fmt])
    codes = {"truncated", "badMagic", "badHeader", "unsupported", "corruptCompression",
             "tooLarge", "fileNotFound", "ioFailure", "corruptImage", "mismatch"}
    for name, spec in HOSTILE[fmt].items():
        assert spec["code"] in codes and set(spec.get("also_ok", [])) <= codes, name
        assert spec["why"], name


def test_fixture_folders_are_small():
    total = sum(p.stat().st_size for d in DIRS.values() for p in d.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_png_fixtures_cover_every_colour_type_and_depth():
    seen = set()
    for name in EXPECTED["png"]:
        _, info = pypng_array(path_of("png", name))
        kind = "palette" if "palette" in info else ("grey" if info["greyscale"] else "rgb")
        seen.add((kind, info["alpha"], info["bitdepth"], bool(info.get("interlace"))))
    for want in [("grey", False, 1), ("grey", False, 2), ("grey", False, 4), ("grey", False, 8), ("grey", False, 16),
                 ("grey", True, 8), ("grey", True, 16), ("rgb", False, 8), ("rgb", False, 16), ("rgb", True, 8),
                 ("rgb", True, 16), ("palette", False, 1), ("palette", False, 2), ("palette", False, 4),
                 ("palette", False, 8)]:
        assert any(s[:3] == want for s in seen), want
    assert any(s[3] for s in seen), "no interlaced PNG"


@pytest.mark.parametrize("fmt,name", VALID)
def test_expected_json_matches_live_oracle(fmt, name):
    """expected.json (read by the Swift tests) must still be what Pillow/pypng say now."""
    e, live = EXPECTED[fmt][name], oracle_view(fmt, path_of(fmt, name))
    assert e["format"] == live["format"]
    assert e["dims"] == live["dims"]
    assert e["channels"] == live["channels"]
    assert e["datatype"] == live["dtype"]
    assert e["file_sha256"] == live["sha256"], "fixture file changed after expected.json was written"
    assert e["raw_sha256"] == live["raw_sha256"]
    for k in ("min", "max", "mean", "std"):
        assert close(e["stats"][k], live["stats"][k], rel=1e-12), k
    if "palette" in e:
        assert e["palette"] == Image.open(path_of(fmt, name)).getpalette()


# ----------------------------------------------------------------------------------------------
# medprep info on every valid fixture
# ----------------------------------------------------------------------------------------------

def check_against_oracle(got: dict, fmt: str, path: Path) -> None:
    want = oracle_view(fmt, path)
    name = path.name
    assert "error" not in got, f"{name}: medprep failed: {got.get('error')}"
    assert got["path"] == str(path)
    for k in ("format", "dims", "channels", "sha256", "memory_bytes"):
        assert got[k] == want[k], f"{name}: {k} is {got[k]!r}, the oracle says {want[k]!r}"
    assert got["datatype"].split(" ")[0] == want["dtype"], f"{name}: datatype {got['datatype']!r} vs {want['dtype']}"
    assert got["spacing"] == [1, 1], f"{name}: spacing {got['spacing']}"
    assert np.array_equal(np.asarray(got["affine"], dtype=np.float64), IDENTITY), f"{name}: affine {got['affine']}"
    assert got["affine_source"] == "image2d"
    assert got["orientation"] == "RAS"
    assert got["frames"] == 1
    gs, ws = got["stats"], want["stats"]
    assert (gs["count"], gs["nonfinite"]) == (ws["count"], ws["nonfinite"]), f"{name}: count/nonfinite"
    for k in ("min", "max", "mean", "std"):
        assert close(gs[k], ws[k]), f"{name}: stats.{k} is {gs[k]!r}, the oracle says {ws[k]!r}"


@pytest.mark.parametrize("fmt,name", VALID)
def test_info_matches_oracle(binary, fmt, name):
    path = path_of(fmt, name)
    rc, doc, err = info_json(binary, path)
    assert isinstance(doc, dict), f"one file must give one JSON object, got {type(doc).__name__}"
    assert rc == 0, f"{name}: exit {rc}\n{err[-2000:]}"
    check_against_oracle(doc, fmt, path)


def test_info_many_images_gives_array_in_argument_order(binary):
    cases = list(reversed(VALID))  # not alphabetical on purpose
    paths = [path_of(f, n) for f, n in cases]
    rc, doc, err = info_json(binary, *paths, timeout=4 * TIMEOUT_S)
    assert rc == 0, err[-2000:]
    assert isinstance(doc, list) and len(doc) == len(paths)
    assert [d["path"] for d in doc] == [str(p) for p in paths]
    for d, (f, n) in zip(doc, cases):
        check_against_oracle(d, f, path_of(f, n))


def test_info_sniffs_content_without_extension(binary, tmp_path):
    for fmt, name in (("png", "rgb16.png"), ("jpeg", "rgb420.jpg")):
        copy = tmp_path / (name.split(".")[0] + ".bin")
        copy.write_bytes(path_of(fmt, name).read_bytes())
        rc, doc, err = info_json(binary, copy)
        assert rc == 0, err[-2000:]
        want = oracle_view(fmt, path_of(fmt, name))
        assert doc["format"] == fmt and doc["dims"] == want["dims"] and doc["channels"] == want["channels"]


def test_info_text_mode_succeeds(binary):
    rc, out, err = run(binary, "info", *[path_of(f, n) for f, n in VALID], timeout=4 * TIMEOUT_S)
    assert rc == 0, err[-2000:]
    assert out.strip()


# ----------------------------------------------------------------------------------------------
# hostile files
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,name", HOSTILE_CASES)
def test_hostile_fails_with_expected_code(binary, fmt, name):
    path = hostile_path(fmt, name)
    rc, doc, _ = info_json(binary, path, limit_memory=True)
    assert rc > 0, f"{name}: exit status {rc}, must be non-zero"
    assert isinstance(doc, dict), f"one file must give one JSON object, got {type(doc).__name__}"
    err = check_error_object(doc, path)
    spec = HOSTILE[fmt][name]
    ok = [spec["code"], *spec.get("also_ok", [])]
    assert err["code"] in ok, f"{name}: code {err['code']!r}, expected one of {ok} ({spec['why']}); " \
                              f"message: {err['message']!r}"


@pytest.mark.parametrize("fmt,name", HOSTILE_CASES)
def test_hostile_text_mode_names_file_on_stderr(binary, fmt, name):
    path = hostile_path(fmt, name)
    rc, _, err = run(binary, "info", path, limit_memory=True)
    assert rc > 0, f"{name}: exit status {rc} (negative = killed by a signal)"
    assert any(str(path) in ln for ln in err.splitlines()), f"no stderr line names {path}:\n{err[-2000:]}"


@pytest.mark.parametrize("fmt,name", sorted(SIZE_BOMBS))
def test_size_bombs_are_refused_without_allocating(binary, fmt, name):
    rc, rss_mb = run_with_rss(binary, "info", "--json", hostile_path(fmt, name))
    assert rc > 0
    assert rss_mb < BOMB_MAX_RSS_MB, f"{name}: peak RSS {rss_mb:.0f} MiB"


def test_chunk_bombs_are_refused_below_64_mib(binary):
    assert len(CHUNK_BOMBS) == 6
    for name in CHUNK_BOMBS:
        rc, rss_mb = run_with_rss(binary, "info", "--json", hostile_path("png", name))
        assert rc > 0, name
        assert rss_mb < CHUNK_BOMB_MAX_RSS_MB, f"{name}: peak RSS {rss_mb:.0f} MiB"
        _, doc, _ = info_json(binary, hostile_path("png", name))
        assert doc["error"]["code"] == "truncated" and "declares 1073741824 bytes" in doc["error"]["message"], doc


def test_good_images_still_reported_next_to_hostile(binary):
    good1, good2 = path_of("png", "grey16.png"), path_of("jpeg", "progressive_64x48.jpg")
    bad = [hostile_path(f, n) for f, n in HOSTILE_CASES]
    paths = [good1, *bad, good2]
    rc, doc, _ = info_json(binary, *paths, limit_memory=True, timeout=2 * TIMEOUT_S)
    assert rc > 0, "a failed file must make the exit status non-zero"
    assert isinstance(doc, list) and len(doc) == len(paths)
    check_against_oracle(doc[0], "png", good1)
    for d, p in zip(doc[1:-1], bad):
        check_error_object(d, p)
    check_against_oracle(doc[-1], "jpeg", good2)


@pytest.mark.parametrize("fmt,name", [("png", "rgb8_64x48.png"), ("jpeg", "progressive_64x48.jpg")])
def test_truncated_copies_fail(binary, tmp_path, fmt, name):
    data = path_of(fmt, name).read_bytes()
    cuts = sorted(set(range(0, len(data), max(1, len(data) // 40))) | {len(data) - 1})
    paths = []
    for n in cuts:
        p = tmp_path / f"cut_{n:06d}{path_of(fmt, name).suffix}"
        p.write_bytes(data[:n])
        paths.append(p)
    rc, doc, _ = info_json(binary, *paths, limit_memory=True, timeout=2 * TIMEOUT_S)
    assert rc > 0
    assert isinstance(doc, list) and len(doc) == len(paths)
    for d, p in zip(doc, paths):
        err = check_error_object(d, p)
        # A cut inside the signature of a PNG/JPEG given its extension is still "truncated".
        assert err["code"] == "truncated", f"{p.name}: {err}"
