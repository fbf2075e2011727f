"""`medprep convert` end to end, against an independent Python pipeline and Python's readers.

Data: `medprep synth DIR --cases3d 3 --cases2d 4 --size3d 40,36,10` (3 NIfTI volumes, some stored
LPS; 4 PNG and 4 JPEG images), plus a bigger synth set (24 volumes, ~2 s to convert) for the
kill/resume test and fold balance. Everything runs in pytest's tmp_path.

1. Shards read back with Python's `safetensors` (numpy, safe_open = mmap) equal what an
   independent nibabel/scipy/numpy/Pillow pipeline (tests/python/convert_oracle.py) computes:
   image (atol 1e-4), label (exact), SDF/RRW at scales 1 and 2 (atol 1e-4), for every 3D, 2D
   grey and 2D colour case. Tensor names, dtypes, shapes, metadata, sha256 and bytes as
   docs/shard-format.md says.
2. Per-sample metadata: position == (i+1)/N exactly, slice_index, slice_count, pcl_partition,
   class_presence, slice_coord_mm (nibabel affine of the canonical resampled volume), case_index
   against the index's slice ranges; manifest_sha256 of the canonical manifest.
3. Folds: one per case, balanced, equal to the documented SplitMix64 deal; every index validates
   against Schemas/shard-index.schema.json; Manifests/*.yaml and synth manifests validate against
   Schemas/manifest.schema.json.
4. Determinism: --jobs 1 / --jobs 2 / a second run give byte-identical output.
5. Crash safety: SIGKILL at several points (also during a resume, and right after the first
   journalled shard), then --resume, gives the uninterrupted bytes; every final-named shard left
   by a kill is complete and its sha256 is in the journal or it is rewritten; --resume refuses a
   changed manifest and a finished output; no overwrite without --force; --force keeps user
   files. Peak RSS does not grow with the dataset (docs/convert.md "Bounded memory").
6. --part 0/2 and 1/2: disjoint contiguous blocks covering all cases, same tensors, case indices
   and folds as a single run; `medprep merge` gives the single run's index (but the shard list)
   and samples; part and merged indexes validate.
7. Bad input: wrong-size mask (exit 1 from validation, or from the case with --allow-errors;
   the message names case, file and both sizes; no index.json); --skip-bad (alone or with
   --allow-errors) lists it under skipped_cases, converts the rest unchanged, case_index keeps its gap; broken
   manifests (exit 1 naming the key path and the manifest file; the manifest schema rejects them too).

Known bugs are pinned with xfail(strict=True): the reason names file and line.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from jsonschema import Draft202012Validator
from safetensors import safe_open

import convert_oracle as oracle
from conftest import ROOT, medprep_binary

INDEX_SCHEMA = json.loads((ROOT / "Schemas" / "shard-index.schema.json").read_text())
MANIFEST_SCHEMA_PATH = ROOT / "Schemas" / "manifest.schema.json"
SHARD_NAME = re.compile(r"shard-[0-9]{5,}\.safetensors")
JOURNAL = ".medprep-journal.json"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def json_diff(a, b, path="", rel=1e-12) -> list[str]:
    """Differences between two JSON values; floats equal within `rel` (0: exact)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in json_diff(a[k], b[k], f"{path}.{k}", rel)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_diff(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= rel * max(abs(a), abs(b))
        return [] if ok else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def assert_same_tree(a: Path, b: Path):
    """Same files, same bytes."""
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb), f"different files: {sorted(set(ta) ^ set(tb))}"
    differ = [k for k in ta if ta[k] != tb[k]]
    if "index.json" in differ:
        diff = json_diff(json.loads(ta["index.json"]), json.loads(tb["index.json"]), rel=0)
        differ.append(f"index.json values: {diff[:5] or 'equal (key order or formatting differs)'}")
    assert not differ, f"files differ between {a} and {b}: {differ}"


def write_manifest(path: Path, manifest: dict) -> Path:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def store_maps_densely(manifest: Path) -> None:
    """Sets maps.storage: dense (the default is online: no maps in the shards)."""
    m = yaml.safe_load(manifest.read_text())
    m["maps"]["storage"] = "dense"
    write_manifest(manifest, m)


def convert(medprep, dataset: Path, out: Path, *extra, manifest: Path | None = None, ok=True):
    args = ["convert", dataset, "--out", out, "--json", *extra]
    if manifest is not None:
        args += ["--manifest", manifest]
    proc = medprep(*args, timeout=300)
    if ok:
        assert proc.returncode == 0, f"convert failed ({proc.returncode}): {proc.stderr[-3000:]}"
    return proc


def read_samples(root: Path, index: dict) -> dict[str, np.ndarray]:
    """All tensors of all shards, concatenated in shard order, read memory-mapped (safe_open)."""
    parts: dict[str, list] = {}
    for s in index["shards"]:
        with safe_open(str(root / s["file"]), framework="np") as f:
            for k in f.keys():
                parts.setdefault(k, []).append(f.get_tensor(k))
    return {k: np.concatenate(v) for k, v in parts.items()}


def case_rows(case: dict) -> slice:
    r = case["slice_range"]
    return slice(r["first_sample"], r["first_sample"] + r["count"])


def sources(case: dict) -> dict[str, str]:
    return {s["role"]: s["path"] for s in case["sources"]}


def splitmix64(seed: int):
    mask = (1 << 64) - 1
    state = seed & mask
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def expected_folds(ids, k: int, seed: int) -> dict[str, int]:
    """docs/convert.md: ids sorted, Fisher-Yates shuffled with SplitMix64(seed), dealt round-robin."""
    order = sorted(ids)
    rng = splitmix64(seed)
    for i in range(len(order) - 1, 0, -1):
        j = next(rng) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return {cid: n % k for n, cid in enumerate(order)}


def schema_errors(instance, schema) -> list[str]:
    v = Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(instance)]


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth(tmp_path_factory, medprep) -> Path:
    d = tmp_path_factory.mktemp("synth")
    proc = medprep("synth", d, "--cases3d", 3, "--cases2d", 4, "--size3d", "40,36,10")
    assert proc.returncode == 0, proc.stderr
    return d


@pytest.fixture(scope="module")
def manifests(synth, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Manifests with small shard sizes, so shards split cases and hold parts of several."""
    d = tmp_path_factory.mktemp("manifests")
    out = {}
    for name, shard_size in (("synth3d", 7), ("synth2d", 3), ("synth2d-colour", 3)):
        m = yaml.safe_load((synth / name / "manifest.yaml").read_text())
        m["shard_size"] = shard_size
        m["maps"]["storage"] = "dense"  # the maps are checked against scipy in the shards themselves
        out[name] = (write_manifest(d / f"{name}.yaml", m), m)
    return out


@pytest.fixture(scope="module")
def converted(synth, manifests, medprep, tmp_path_factory) -> dict[str, tuple[Path, dict, dict]]:
    """name -> (out dir, index, manifest) for the three synth datasets (--jobs 2)."""
    d = tmp_path_factory.mktemp("converted")
    out = {}
    for name, (mpath, m) in manifests.items():
        o = d / name
        convert(medprep, synth / name, o, "--jobs", 2, manifest=mpath)
        out[name] = (o, json.loads((o / "index.json").read_text()), m)
    return out


BIG_MANIFEST = {
    "name": "big",
    "layout": "nnunet",
    "labels": {"ordinal": True, "classes": [{"name": n, "value": i} for i, n in
                                            enumerate(["background", "outer", "middle", "core"])]},
    "geometry": {"orientation": "RAS", "slice_axis": "z", "target_spacing": [1.0, 1.0, "keep"], "size": [96, 96],
                 "fit": "pad-or-crop"},
    "intensity": {"mode": "zscore-foreground"},
    "maps": {"sdf": True, "rrw": True, "scales": [1], "storage": "dense"},
    "folds": {"k": 5, "seed": 3},
    "shard_size": 24,
}


@pytest.fixture(scope="module")
def big(tmp_path_factory, medprep) -> tuple[Path, Path]:
    """24 volumes of 128x128x24..28 (about 2 s to convert on 2 cores): (dataset, manifest)."""
    d = tmp_path_factory.mktemp("big")
    proc = medprep("synth", d, "--cases3d", 24, "--cases2d", 1, "--size3d", "128,128,24")
    assert proc.returncode == 0, proc.stderr
    return d / "synth3d", write_manifest(d / "big.yaml", BIG_MANIFEST)


TIME = Path("/usr/bin/time")


def run_measured(args: list, tmp: Path) -> tuple[int, float, float | None]:
    """Runs medprep with args; returns (exit code, wall seconds, peak RSS in MiB or None).
    The RSS comes from /usr/bin/time: a child forked straight from pytest would report pytest's own
    RSS (Linux keeps the pre-exec high-water mark in ru_maxrss)."""
    cmd = [str(medprep_binary()), *map(str, args)]
    rss_file = tmp / f"rss-{time.monotonic_ns()}.txt"
    if TIME.exists():
        cmd = [str(TIME), "-f", "%M", "-o", str(rss_file), *cmd]
    t0 = time.monotonic()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    seconds = time.monotonic() - t0
    rss = int(rss_file.read_text().split()[-1]) / 1024 if rss_file.exists() else None
    return rc, seconds, rss


@pytest.fixture(scope="module")
def big_reference(big, tmp_path_factory) -> tuple[Path, float, float]:
    """An uninterrupted conversion of the big set: (out, wall seconds, peak RSS MiB)."""
    dataset, manifest = big
    out = tmp_path_factory.mktemp("bigref") / "out"
    rc, seconds, rss = run_measured(["convert", dataset, "--out", out, "--manifest", manifest, "--jobs", 2], out.parent)
    assert rc == 0 and (out / "index.json").exists()
    return out, seconds, rss


# ------------------------------------------------------------------------------------------------
# 1. shards against the oracle
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synth3d", "synth2d", "synth2d-colour"])
def test_shard_files_follow_the_format(converted, name):
    out, index, m = converted[name]
    K = len(m["labels"]["classes"])
    h, w = m["geometry"]["size"]
    scales = m["maps"]["scales"]
    first = 0
    for k, s in enumerate(index["shards"]):
        path = out / s["file"]
        assert SHARD_NAME.fullmatch(s["file"]), s["file"]
        assert s["sha256"] == sha256(path) and s["bytes"] == path.stat().st_size
        assert s["first_sample"] == first
        first += s["sample_count"]
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata()
            n = s["sample_count"]
            assert meta == {"format": "medprep-shard", "format_version": "1", "shard_index": str(k),
                            "sample_count": str(n), "medprep_version": index["medprep_version"]}
            C = 1 if name == "synth3d" else 3
            want = {"image": ("float32", (n, C, h, w)), "label": ("uint8", (n, h, w)),
                    "case_index": ("int32", (n,)), "slice_index": ("int32", (n,)), "slice_count": ("int32", (n,)),
                    "position": ("float64", (n,)), "slice_coord_mm": ("float64", (n,)),
                    "pcl_partition": ("uint8", (n,)), "class_presence": ("uint8", (n, K))}
            for sc in scales:
                suffix = "" if sc == 1 else f"_s{sc}"
                for kind in ("sdf", "rrw"):
                    want[kind + suffix] = ("float32", (n, K, -(-h // sc), -(-w // sc)))
            got = {key: (str(f.get_tensor(key).dtype), f.get_tensor(key).shape) for key in f.keys()}
            assert got == want
    assert first == index["sample_count"]
    # the shards are the only medprep files left; the journal is gone
    assert sorted(p.name for p in out.iterdir()) == sorted([s["file"] for s in index["shards"]] + ["index.json"])


def _compare_case(t, o: oracle.OracleCase, case: dict, where: str):
    rows = case_rows(case)
    assert t["image"][rows].shape == o.image.shape, where
    np.testing.assert_allclose(t["image"][rows], o.image, rtol=0, atol=1e-4, err_msg=f"{where}: image")
    np.testing.assert_array_equal(t["label"][rows], o.label, err_msg=f"{where}: label")
    assert set(o.maps) == {k for k in t if k.startswith(("sdf", "rrw"))}
    for name, want in o.maps.items():
        np.testing.assert_allclose(t[name][rows], want, rtol=0, atol=1e-4, err_msg=f"{where}: {name}")


def test_volume_cases_match_the_nibabel_scipy_pipeline(converted, synth):
    out, index, m = converted["synth3d"]
    t = read_samples(out, index)
    v2c = {c.get("value", i): i for i, c in enumerate(m["labels"]["classes"])}
    assert len(index["cases"]) == 3
    full_slices = 0
    for case in index["cases"]:
        src = sources(case)
        o = oracle.convert_volume(synth / "synth3d" / src["image"], synth / "synth3d" / src["mask"], m, v2c)
        _compare_case(t, o, case, case["id"])
        full_slices += int(oracle.full_class_mask(o.label, len(v2c), [1])[1].any(axis=1).sum())
    # slices with no foreground exist, so the full-class rule (virtual pixel before row 0) was exercised
    assert full_slices > 0
    # the LPS-stored cases were really flipped (canonical orientation differs from storage)
    stored = {c["id"]: c["original_geometry"]["orientation"] for c in index["cases"]}
    assert "LPS" in stored.values() and "RAS" in stored.values()


@pytest.mark.parametrize("name", ["synth2d", "synth2d-colour"])
def test_2d_cases_match_the_pillow_scipy_pipeline(converted, synth, name):
    out, index, m = converted[name]
    t = read_samples(out, index)
    assert len(index["cases"]) == 4
    for case in index["cases"]:
        src = sources(case)
        o = oracle.convert_image2d(synth / name / src["image"], synth / name / src["mask"], m)
        _compare_case(t, o, case, f"{name}/{case['id']}")


@pytest.fixture(scope="module")
def empty_mask_2d(synth, medprep, tmp_path_factory):
    """synth2d plus one image whose mask is all background (class 0 fills the slice)."""
    from PIL import Image

    d = tmp_path_factory.mktemp("empty2d") / "ds"
    shutil.copytree(synth / "synth2d", d)
    shutil.copy(d / "images" / "img_000.png", d / "images" / "img_zz.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(d / "masks" / "img_zz.png")
    store_maps_densely(d / "manifest.yaml")
    out = d.parent / "out"
    convert(medprep, d, out)
    index = json.loads((out / "index.json").read_text())
    return d, out, index, yaml.safe_load((d / "manifest.yaml").read_text())


def test_2d_empty_classes_are_zero_sdf_and_plus_one_rrw(empty_mask_2d):
    d, out, index, m = empty_mask_2d
    t = read_samples(out, index)
    case = next(c for c in index["cases"] if c["id"] == "img_zz")
    n = case["slice_range"]["first_sample"]
    for name in ("sdf", "sdf_s2"):
        assert (t[name][n, 1:] == 0).all()
    for name in ("rrw", "rrw_s2"):
        assert (t[name][n, 1:] == 1).all()
    assert t["class_presence"][n].tolist() == [1, 0, 0, 0]


def test_2d_full_class_is_measured_like_scipy_on_the_stored_plane(empty_mask_2d):
    """Background fills the image: its SDF/RRW are scipy's distance_transform_edt of the [H, W]
    plane (virtual background pixel before row 0), not of the transposed plane."""
    d, out, index, m = empty_mask_2d
    t = read_samples(out, index)
    case = next(c for c in index["cases"] if c["id"] == "img_zz")
    o = oracle.convert_image2d(d / sources(case)["image"], d / sources(case)["mask"], m)
    _compare_case(t, o, case, "img_zz")
    transposed = oracle.convert_image2d(d / sources(case)["image"], d / sources(case)["mask"], m, virtual_axis="x")
    assert np.abs(transposed.maps["sdf"] - o.maps["sdf"]).max() > 0.5      # the two conventions differ here


# ------------------------------------------------------------------------------------------------
# 2. per-sample metadata
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synth3d", "synth2d", "synth2d-colour"])
def test_slice_metadata(converted, synth, name):
    out, index, m = converted[name]
    t = read_samples(out, index)
    K = len(m["labels"]["classes"])
    assert [c["case_index"] for c in index["cases"]] == list(range(len(index["cases"])))
    assert [c["id"] for c in index["cases"]] == sorted(c["id"] for c in index["cases"])
    nxt = 0
    for case in index["cases"]:
        rows = case_rows(case)
        assert rows.start == nxt
        nxt = rows.stop
        N = case["slice_range"]["count"]
        assert (t["case_index"][rows] == case["case_index"]).all()
        assert t["slice_index"][rows].tolist() == list(range(N))
        assert (t["slice_count"][rows] == N).all()
        i = np.arange(N)
        assert t["position"][rows].dtype == np.float64
        assert (t["position"][rows] == (i + 1) / N).all()          # exact float64
        assert t["position"][rows][-1] == 1.0
        assert t["pcl_partition"][rows].tolist() == [oracle.pcl_partition(k, N) for k in range(N)]
        if name == "synth3d":
            src = sources(case)
            img = nib.as_closest_canonical(nib.load(str(synth / name / src["image"])))
            assert N == img.shape[2]                                 # z kept; canonical slice count
            _, _, affine = oracle.resample(np.zeros(img.shape), np.zeros(img.shape, int), img.affine,
                                           img.header.get_zooms()[:3], [1.0, 1.0, None])
            want = nib.affines.apply_affine(affine, np.stack([np.zeros(N), np.zeros(N), i], axis=1))[:, 2]
            np.testing.assert_allclose(t["slice_coord_mm"][rows], want, rtol=0, atol=1e-9)
            assert np.all(np.diff(t["slice_coord_mm"][rows]) > 0)    # RAS: z grows superior
        else:
            assert N == 1 and t["slice_coord_mm"][rows].tolist() == [0.0]
    assert nxt == index["sample_count"] == len(t["position"])
    presence = np.stack([(t["label"] == k).any(axis=(1, 2)) for k in range(K)], axis=1).astype(np.uint8)
    np.testing.assert_array_equal(t["class_presence"], presence)
    assert presence[:, 0].all() and presence.sum() > len(presence)  # background everywhere, others somewhere


@pytest.mark.parametrize("name", ["synth3d", "synth2d"])
def test_index_records_the_manifest_and_sources(converted, synth, name):
    out, index, m = converted[name]
    params = index["parameters"]
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert index["manifest_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert params["shard_size"] == m["shard_size"] and params["name"] == m["name"]
    assert [c["name"] for c in index["classes"]] == [c["name"] for c in m["labels"]["classes"]]
    assert {k: v for k, v in index["maps"].items() if k != "rrw_from_sdf"} == params["maps"]
    derived = params["maps"]["storage"] == "compact" and params["maps"]["sdf"] and params["maps"]["convention"] != "itk"
    assert index["maps"]["rrw_from_sdf"] == (derived and params["maps"]["rrw"])
    for case in index["cases"]:
        for s in case["sources"]:
            assert s["sha256"] == sha256(synth / name / s["path"])
        if name == "synth3d":
            img = nib.load(str(synth / name / sources(case)["image"]))
            g = case["original_geometry"]
            assert g["dims"] == list(img.shape)
            np.testing.assert_allclose(g["affine"], img.affine, atol=1e-6)
            assert g["orientation"] == "".join(nib.aff2axcodes(img.affine))


# ------------------------------------------------------------------------------------------------
# 3. folds and schemas
# ------------------------------------------------------------------------------------------------

def _check_folds(out: Path, index: dict):
    k = index["folds"]["k"]
    folds = {c["id"]: c["fold"] for c in index["cases"]}
    ids = [c["id"] for c in index["cases"]] + [s["id"] for s in index["skipped_cases"]]
    assert folds == {i: f for i, f in expected_folds(ids, k, index["folds"]["seed"]).items() if i in folds}
    sizes = np.bincount(list(expected_folds(ids, k, index["folds"]["seed"]).values()), minlength=k)
    assert sizes.max() - sizes.min() <= 1, sizes
    # a case's samples are one contiguous run, all with that case's index: a fold never splits a case
    t = read_samples(out, index)
    for c in index["cases"]:
        assert (t["case_index"][case_rows(c)] == c["case_index"]).all()
    assert np.unique(t["case_index"]).tolist() == [c["case_index"] for c in index["cases"]]


def test_folds_are_case_level_balanced_and_as_documented(converted, big_reference):
    for name in converted:
        out, index, _ = converted[name]
        _check_folds(out, index)
    out = big_reference[0]
    index = json.loads((out / "index.json").read_text())
    _check_folds(out, index)
    sizes = np.bincount([c["fold"] for c in index["cases"]], minlength=5)
    assert sorted(sizes.tolist()) == [4, 5, 5, 5, 5]


def test_indexes_validate_against_the_schema(converted, big_reference, empty_mask_2d):
    indexes = [idx for _, idx, _ in converted.values()]
    indexes.append(json.loads((big_reference[0] / "index.json").read_text()))
    indexes.append(empty_mask_2d[2])
    Draft202012Validator.check_schema(INDEX_SCHEMA)
    for index in indexes:
        assert schema_errors(index, INDEX_SCHEMA) == [], index["dataset"]["name"]


def _manifest_schema():
    if not MANIFEST_SCHEMA_PATH.exists():
        pytest.skip("Schemas/manifest.schema.json does not exist yet")
    schema = json.loads(MANIFEST_SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return schema


def test_manifests_validate_against_the_manifest_schema(synth):
    schema = _manifest_schema()
    paths = sorted((ROOT / "Manifests").glob("*.y*ml")) + sorted(synth.glob("*/manifest.yaml"))
    paths.append(None)
    assert len(paths) >= 4
    for p in paths:
        m = BIG_MANIFEST if p is None else yaml.safe_load(p.read_text())
        assert schema_errors(m, schema) == [], p


# ------------------------------------------------------------------------------------------------
# 4. determinism
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["synth3d", "synth2d-colour"])
def test_output_does_not_depend_on_jobs_or_the_run(converted, synth, manifests, medprep, tmp_path, name):
    reference = converted[name][0]          # --jobs 2
    mpath = manifests[name][0]
    for label, extra in (("jobs1", ["--jobs", 1]), ("jobs2", ["--jobs", 2]), ("jobs3", ["--jobs", 3])):
        convert(medprep, synth / name, tmp_path / label, *extra, manifest=mpath)
        assert_same_tree(reference, tmp_path / label)


# ------------------------------------------------------------------------------------------------
# 5. crash safety
# ------------------------------------------------------------------------------------------------

def _check_after_kill(out: Path) -> tuple[int, int]:
    """Every final-named shard is complete; the journal's shards are on disk with their sha256.
    Returns (shards listed in the journal, final-named shards not listed: resume must rewrite them)."""
    jpath = out / JOURNAL
    listed = {}
    if jpath.exists():
        journal = json.loads(jpath.read_text())
        listed = {s["file"]: s["sha256"] for s in journal["shards"]}
    for f, sha in listed.items():
        assert (out / f).exists(), f"journal lists {f} but it is missing"
        assert sha256(out / f) == sha, f"{f} changed after the journal recorded it"
    unlisted = 0
    for p in out.iterdir():
        if not SHARD_NAME.fullmatch(p.name):
            assert p.name in ("index.json", JOURNAL) or ".tmp-" in p.name, f"unexpected file {p.name}"
            continue
        # complete: parses, data ends at the end of the file, every tensor readable
        with safe_open(str(p), framework="np") as f:
            n = int(f.metadata()["sample_count"])
            planes = int(f.get_tensor("class_presence").sum())  # compact maps: [P, h, w]
            for key in f.keys():
                t = f.get_tensor(key)
                compact = key.startswith(("sdf", "rrw")) and t.ndim == 3
                assert t.shape[0] == (planes if compact else n)
        if p.name not in listed:
            unlisted += 1
    return len(listed), unlisted


def test_killed_runs_resume_to_identical_bytes(big, big_reference, medprep, tmp_path):
    """SIGKILL at points spread over the run, then --resume: byte-identical to an uninterrupted run.
    Kill points follow observed progress (the journal's shard count, plus a random delay of up to
    a shard's time), not fractions of a timed reference run: a faster build would otherwise finish
    before the late points."""
    dataset, manifest = big
    reference, seconds, _ = big_reference
    total = len(json.loads((reference / "index.json").read_text())["shards"])
    per_shard = seconds / max(1, total)
    rng = random.Random(1234)
    binary = str(medprep_binary())
    interrupted = 0
    notes = []
    # shards journalled before the kill, per round; the last case kills the resumed run too
    plans = ([0], [max(1, total // 3)], [max(1, total // 2)], [max(1, total - 2)], [1, max(2, total // 2)])
    for n, thresholds in enumerate(plans):
        out = tmp_path / f"kill{n}"
        args = [binary, "convert", str(dataset), "--out", str(out), "--manifest", str(manifest), "--jobs", "2"]
        for round_, need in enumerate(thresholds):
            cmd = args + (["--resume"] if round_ > 0 else [])
            # threshold 0: somewhere in the first tenth of the run (validation, the first cases)
            delay = rng.uniform(0, per_shard) if need else rng.uniform(0.02, 0.1) * seconds
            code = _kill_after_journal(cmd, out, need, delay=delay)
            if code == 0:
                notes.append(f"run {n}.{round_} finished before the kill")
                break
            assert code == -signal.SIGKILL
            interrupted += 1
            if not out.exists():
                notes.append(f"run {n}.{round_}: killed before OUT was created")
            elif not (out / "index.json").exists():
                listed, unlisted = _check_after_kill(out)
                notes.append(f"run {n}.{round_}: {listed} journalled shards, {unlisted} unlisted")
        if (out / "index.json").exists() and not (out / JOURNAL).exists():
            continue                           # finished before the kill: nothing to resume
        proc = medprep("convert", dataset, "--out", out, "--manifest", manifest, "--jobs", 1, "--resume", timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert_same_tree(reference, out)
    print("kill points:", notes)
    assert interrupted >= 3, f"too few runs were interrupted mid-way: {notes}"


def _journalled_shards(out: Path) -> int:
    try:
        return len(json.loads((out / JOURNAL).read_text())["shards"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _kill_after_journal(cmd: list[str], out: Path, shards: int, delay: float = 0.0, timeout: float = 120):
    """Starts cmd, waits until the journal lists at least `shards` shards (0: at once), then
    `delay` seconds more, and SIGKILLs it. Returns the exit code (0 if it finished first)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None and _journalled_shards(out) < shards:
        time.sleep(0.002)
    if p.poll() is None:
        time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return p.returncode


def test_resume_after_the_first_journalled_shard(big, big_reference, medprep, tmp_path):
    """Kill as soon as the journal lists a shard (restored shard and case records go through the
    journal's JSON round trip), resume: byte-identical to an uninterrupted run."""
    dataset, manifest = big
    reference = big_reference[0]
    out = tmp_path / "out"
    cmd = [str(medprep_binary()), "convert", str(dataset), "--out", str(out), "--manifest", str(manifest), "--jobs", "2"]
    assert _kill_after_journal(cmd, out, 1) == -signal.SIGKILL
    assert not (out / "index.json").exists()
    assert _check_after_kill(out)[0] >= 1
    proc = medprep("convert", dataset, "--out", out, "--manifest", manifest, "--resume", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_same_tree(reference, out)


def test_resume_refuses_other_parameters_and_verifies_finished_output(big, converted, synth, manifests, medprep, tmp_path):
    dataset, manifest = big
    out = tmp_path / "out"
    cmd = [str(medprep_binary()), "convert", str(dataset), "--out", str(out), "--manifest", str(manifest), "--jobs", "2"]
    assert _kill_after_journal(cmd, out, 1) == -signal.SIGKILL
    before = tree(out)
    m = copy.deepcopy(BIG_MANIFEST)
    m["shard_size"] = 10
    proc = convert(medprep, dataset, out, "--resume", manifest=write_manifest(tmp_path / "other.yaml", m), ok=False)
    assert proc.returncode == 1 and JOURNAL in proc.stderr, proc.stderr
    assert tree(out) == before
    # a finished output (a requeued job-array task): verified, nothing written, exit 0
    done = tmp_path / "done"
    shutil.copytree(converted["synth2d"][0], done)
    proc = convert(medprep, synth / "synth2d", done, "--resume", manifest=manifests["synth2d"][0])
    summary = json.loads(proc.stdout)
    index = json.loads((done / "index.json").read_text())
    assert summary["already_complete"] is True
    assert summary["samples"] == index["sample_count"] and summary["shards"] == len(index["shards"])
    assert tree(done) == tree(converted["synth2d"][0])
    # ... but not one written with other parameters
    m2 = copy.deepcopy(manifests["synth2d"][1])
    m2["shard_size"] = 7
    proc = convert(medprep, synth / "synth2d", done, "--resume", manifest=write_manifest(tmp_path / "m2.yaml", m2), ok=False)
    assert proc.returncode == 1 and "the manifest" in proc.stderr and "--force" in proc.stderr, proc.stderr
    # ... nor one whose shard changed since
    shard = done / index["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    proc = convert(medprep, synth / "synth2d", done, "--resume", manifest=manifests["synth2d"][0], ok=False)
    assert proc.returncode == 1 and "does not verify" in proc.stderr and shard.name in proc.stderr, proc.stderr
    assert shard.read_bytes() == bytes(data)


def test_memory_does_not_grow_with_the_dataset(big, big_reference, tmp_path):
    dataset, manifest = big
    out_all, _, rss_all = big_reference
    out = tmp_path / "out"
    rc, _, rss_part = run_measured(["convert", dataset, "--out", out, "--manifest", manifest, "--jobs", 2, "--part", "0/8"],
                                   tmp_path)
    assert rc == 0
    if rss_part is None or rss_all is None:
        pytest.skip("/usr/bin/time is not installed")
    size = lambda d: sum(p.stat().st_size for p in d.rglob("shard-*.safetensors"))
    extra_output = (size(out_all) - size(out)) / 2**20
    assert extra_output > 100
    # 8x the cases may cost some memory, but not a large share of the extra output
    assert rss_all - rss_part < 0.3 * extra_output, (rss_part, rss_all, extra_output)


def test_existing_output_is_never_overwritten_without_force(converted, synth, manifests, medprep, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted["synth2d"][0], out)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    proc = convert(medprep, synth / "synth2d", out, manifest=manifests["synth2d"][0], ok=False)
    assert proc.returncode != 0
    assert "--force" in proc.stderr and str(out) in proc.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    # a folder holding only an unfinished run (shards, no index) is not overwritten either
    (out / "index.json").unlink()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    proc = convert(medprep, synth / "synth2d", out, manifest=manifests["synth2d"][0], ok=False)
    assert proc.returncode != 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before


def test_force_replaces_only_medprep_files(converted, synth, manifests, medprep, tmp_path):
    out = tmp_path / "out"
    m = copy.deepcopy(manifests["synth2d"][1])
    m["shard_size"] = 1                               # 4 shards, more than the final run's 2
    convert(medprep, synth / "synth2d", out, manifest=write_manifest(tmp_path / "m1.yaml", m))
    assert len(list(out.glob("shard-*.safetensors"))) == 4
    (out / "notes.txt").write_text("mine")
    (out / "mydir").mkdir()
    (out / "mydir" / "shard-00000.safetensors").write_bytes(b"not medprep's")
    convert(medprep, synth / "synth2d", out, "--force", manifest=manifests["synth2d"][0])
    index = json.loads((out / "index.json").read_text())
    assert sorted(p.name for p in out.glob("shard-*")) == [s["file"] for s in index["shards"]]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "mydir" / "shard-00000.safetensors").read_bytes() == b"not medprep's"
    # what medprep wrote is exactly a fresh conversion with that manifest
    mine = {"notes.txt", "mydir/shard-00000.safetensors"}
    assert {k: v for k, v in tree(out).items() if k not in mine} == tree(converted["synth2d"][0])


def test_force_keeps_user_files_that_resemble_medprep_names(converted, synth, manifests, medprep, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted["synth2d"][0], out)
    (out / "shard-00000.safetensors.bak").write_text("my backup")
    (out / "notes.tmp-old").write_text("mine")
    convert(medprep, synth / "synth2d", out, "--force", manifest=manifests["synth2d"][0])
    assert (out / "shard-00000.safetensors.bak").exists() and (out / "notes.tmp-old").exists()


# ------------------------------------------------------------------------------------------------
# 6. --part and merge
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parts(converted, synth, manifests, medprep, tmp_path_factory):
    out = tmp_path_factory.mktemp("parts") / "out"
    for i in range(2):
        convert(medprep, synth / "synth3d", out, "--part", f"{i}/2", manifest=manifests["synth3d"][0])
    return out


def test_parts_are_disjoint_blocks_covering_all_cases(parts, converted):
    full_out, full, _ = converted["synth3d"]
    t_full = read_samples(full_out, full)
    by_id = {c["id"]: c for c in full["cases"]}
    assert sorted(p.name for p in (parts / "parts").iterdir()) == ["0-of-2", "1-of-2"]
    assert not (parts / "index.json").exists()
    seen = []
    for i in range(2):
        d = parts / "parts" / f"{i}-of-2"
        index = json.loads((d / "index.json").read_text())
        assert index["part"] == {"index": i, "count": 2}
        ids = [c["id"] for c in index["cases"]]
        n = len(full["cases"])
        assert ids == [c["id"] for c in full["cases"][n * i // 2: n * (i + 1) // 2]]   # contiguous blocks
        seen += ids
        t = read_samples(d, index)
        for c in index["cases"]:
            ref = by_id[c["id"]]
            assert c["case_index"] == ref["case_index"] and c["fold"] == ref["fold"]
            for key in t:
                np.testing.assert_array_equal(t[key][case_rows(c)], t_full[key][case_rows(ref)], err_msg=f"{c['id']} {key}")
    assert sorted(seen) == sorted(by_id) and len(seen) == len(set(seen))


def _merged(parts, medprep):
    if "merge" not in medprep("--help").stdout:
        pytest.skip("medprep merge does not exist yet")
    if not (parts / "index.json").exists():
        proc = medprep("merge", parts)
        assert proc.returncode == 0, proc.stderr
    return json.loads((parts / "index.json").read_text())


def test_merge_lists_all_cases_with_single_run_numbering(parts, converted, medprep):
    merged = _merged(parts, medprep)
    full_out, full, _ = converted["synth3d"]
    assert merged["sample_count"] == full["sample_count"]
    assert [(c["case_index"], c["id"], c["slice_range"], c["fold"], c["sources"]) for c in merged["cases"]] == \
        [(c["case_index"], c["id"], c["slice_range"], c["fold"], c["sources"]) for c in full["cases"]]
    assert merged["folds"] == full["folds"] and merged["skipped_cases"] == []
    # everything but the shard list is exactly the single run's (floats included)
    assert json_diff({k: v for k, v in merged.items() if k != "shards"},
                     {k: v for k, v in full.items() if k != "shards"}, rel=0) == []
    first = 0
    for s in merged["shards"]:
        assert s["first_sample"] == first and sha256(parts / s["file"]) == s["sha256"]
        first += s["sample_count"]
    assert first == merged["sample_count"]
    t_m, t_f = read_samples(parts, merged), read_samples(full_out, full)
    for key in t_f:
        np.testing.assert_array_equal(t_m[key], t_f[key], err_msg=key)
    # merging again does not overwrite the index without --force
    before = (parts / "index.json").read_bytes()
    proc = medprep("merge", parts)
    assert proc.returncode != 0 and "--force" in proc.stderr
    assert (parts / "index.json").read_bytes() == before


def test_part_and_merged_indexes_validate_against_the_schema(parts, medprep):
    merged = _merged(parts, medprep)
    errors = schema_errors(merged, INDEX_SCHEMA)
    for i in range(2):
        errors += schema_errors(json.loads((parts / "parts" / f"{i}-of-2" / "index.json").read_text()), INDEX_SCHEMA)
    assert errors == []


def test_merged_shards_keep_their_index_within_the_part(parts, medprep):
    """docs/shard-format.md: after merge, files are parts/I-of-N/shard-NNNNN.safetensors and each
    shard's shard_index metadata is its index within its part."""
    merged = _merged(parts, medprep)
    seen: dict[str, int] = {}
    for s in merged["shards"]:
        m = re.fullmatch(r"parts/([0-9]+-of-[0-9]+)/shard-([0-9]{5,})\.safetensors", s["file"])
        assert m, s["file"]
        k = seen.get(m.group(1), 0)
        seen[m.group(1)] = k + 1
        assert int(m.group(2)) == k
        with safe_open(str(parts / s["file"]), framework="np") as f:
            assert f.metadata()["shard_index"] == str(k) and f.metadata()["sample_count"] == str(s["sample_count"])
    assert sorted(seen) == ["0-of-2", "1-of-2"]


# ------------------------------------------------------------------------------------------------
# 7. bad input
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_mask_dataset(synth, tmp_path_factory) -> Path:
    """synth3d with synth_001's mask one voxel narrower than its image."""
    d = tmp_path_factory.mktemp("badmask") / "synth3d"
    shutil.copytree(synth / "synth3d", d)
    mask = d / "labelsTr" / "synth_001.nii.gz"
    nii = nib.load(str(mask))
    data = np.asarray(nii.dataobj)[:-1]
    nib.save(nib.Nifti1Image(data, nii.affine), str(mask))
    store_maps_densely(d / "manifest.yaml")
    return d


@pytest.mark.parametrize("flags", [[], ["--allow-errors"]], ids=["validation", "conversion"])
def test_wrong_size_mask_stops_the_run(bad_mask_dataset, medprep, tmp_path, flags):
    """Caught by the validation that runs first, or (with --allow-errors) by the case itself."""
    out = tmp_path / "out"
    proc = convert(medprep, bad_mask_dataset, out, *flags, ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "synth_001" in proc.stderr and "labelsTr/synth_001.nii.gz" in proc.stderr, proc.stderr
    assert "39x36" in proc.stderr and "40x36" in proc.stderr, proc.stderr   # both sizes named
    if flags:
        assert "case 'synth_001'" in proc.stderr, proc.stderr
    assert not list(out.rglob("index.json")) and not list(out.rglob("shard-*"))


def test_validation_errors_leave_out_untouched(bad_mask_dataset, converted, medprep, tmp_path):
    """Validation runs beside the first cases, but OUT changes only once it has passed: a new OUT
    is not even created, and with --force an earlier output stays byte for byte."""
    out = tmp_path / "new"
    proc = convert(medprep, bad_mask_dataset, out, ok=False)
    assert proc.returncode == 1 and "validation found" in proc.stderr, proc.stderr
    assert not out.exists()
    old = tmp_path / "old"
    shutil.copytree(converted["synth3d"][0], old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    proc = convert(medprep, bad_mask_dataset, old, "--force", ok=False)
    assert proc.returncode == 1 and "validation found" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before


def test_skip_bad_lists_the_case_and_converts_the_others(bad_mask_dataset, converted, medprep, tmp_path):
    out = tmp_path / "out"
    convert(medprep, bad_mask_dataset, out, "--skip-bad", "--allow-errors")
    index = json.loads((out / "index.json").read_text())
    assert [s["id"] for s in index["skipped_cases"]] == ["synth_001"]
    assert "labelsTr/synth_001.nii.gz" in index["skipped_cases"][0]["reason"]
    assert [c["id"] for c in index["cases"]] == ["synth_000", "synth_002"]
    assert schema_errors(index, INDEX_SCHEMA) == []
    # the converted cases are exactly what the full run made of them (case numbering included)
    _, full, _ = converted["synth3d"]
    full_out = converted["synth3d"][0]
    t, t_full = read_samples(out, index), read_samples(full_out, full)
    by_id = {c["id"]: c for c in full["cases"]}
    for c in index["cases"]:
        assert c["fold"] == by_id[c["id"]]["fold"]
        for key in ("image", "label", "sdf", "rrw", "position", "slice_coord_mm"):
            np.testing.assert_array_equal(t[key][case_rows(c)], t_full[key][case_rows(by_id[c["id"]])])
    assert index["sample_count"] == sum(c["slice_range"]["count"] for c in index["cases"])
    # each sample's case_index names the case record whose slice_range holds it
    for c in index["cases"]:
        assert (t["case_index"][case_rows(c)] == c["case_index"]).all()


def test_skipped_cases_leave_gaps_in_case_index(bad_mask_dataset, medprep, tmp_path):
    """docs/shard-format.md: case_index is the case's position in the whole sorted dataset (gaps
    where cases were skipped); cases[].case_index strictly increasing."""
    out = tmp_path / "out"
    convert(medprep, bad_mask_dataset, out, "--skip-bad", "--allow-errors")
    index = json.loads((out / "index.json").read_text())
    assert [(c["id"], c["case_index"]) for c in index["cases"]] == [("synth_000", 0), ("synth_002", 2)]
    t = read_samples(out, index)
    assert np.unique(t["case_index"]).tolist() == [0, 2]
    assert [c["case_index"] for c in index["normalisation"]["cases"]] == [0, 2]


def test_skip_bad_alone_skips_a_case_that_validation_flags(bad_mask_dataset, medprep, tmp_path):
    """docs/convert.md: --skip-bad converts despite validation errors, skipping the bad cases."""
    out = tmp_path / "out"
    convert(medprep, bad_mask_dataset, out, "--skip-bad")
    index = json.loads((out / "index.json").read_text())
    assert [s["id"] for s in index["skipped_cases"]] == ["synth_001"]
    assert [c["id"] for c in index["cases"]] == ["synth_000", "synth_002"]


BROKEN = [
    # (change to the synth3d manifest, key path that must be named)
    (lambda m: m["geometry"].__setitem__("sliceaxis", "z"), "geometry.sliceaxis"),
    (lambda m: m.__setitem__("shard_sise", 8), "shard_sise"),
    (lambda m: m.__setitem__("shard_size", "many"), "shard_size"),
    (lambda m: m["folds"].__setitem__("k", "three"), "folds.k"),
    (lambda m: m["geometry"].__setitem__("size", 80), "geometry.size"),
    (lambda m: m["maps"].__setitem__("sdf", "yes please"), "maps.sdf"),
]


@pytest.mark.parametrize("change,key", BROKEN, ids=[k for _, k in BROKEN])
def test_broken_manifest_is_refused_naming_the_key(synth, medprep, tmp_path, change, key):
    m = yaml.safe_load((synth / "synth3d" / "manifest.yaml").read_text())
    change(m)
    mpath = write_manifest(tmp_path / "bad.yaml", m)
    out = tmp_path / "out"
    proc = convert(medprep, synth / "synth3d", out, manifest=mpath, ok=False)
    assert proc.returncode == 1, proc.stderr
    assert f"'{key}'" in proc.stderr, proc.stderr
    assert str(mpath) in proc.stderr, proc.stderr
    assert not out.exists() or not any(out.iterdir())
    if MANIFEST_SCHEMA_PATH.exists():                 # the schema agrees with medprep
        assert schema_errors(m, json.loads(MANIFEST_SCHEMA_PATH.read_text())), f"schema accepts a manifest with bad '{key}'"


@pytest.mark.parametrize("storage", ["compact", "online"])
def test_resume_in_other_map_storage(big, medprep, tmp_path, storage):
    """Kill after the first journalled shard and resume, with compact (float16) or online maps:
    byte-identical to an uninterrupted run in the same storage."""
    dataset, _ = big
    m = dict(BIG_MANIFEST, maps=dict(BIG_MANIFEST["maps"], storage=storage, dtype="float16", scales=[1, 2]))
    manifest = write_manifest(tmp_path / "m.yaml", m)
    reference = tmp_path / "reference"
    assert convert(medprep, dataset, reference, "--jobs", 2, manifest=manifest).returncode == 0
    out = tmp_path / "out"
    cmd = [str(medprep_binary()), "convert", str(dataset), "--out", str(out), "--manifest", str(manifest), "--jobs", "2"]
    if _kill_after_journal(cmd, out, 1) != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed")
    assert _check_after_kill(out)[0] >= 1
    proc = medprep("convert", dataset, "--out", out, "--manifest", manifest, "--resume", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_same_tree(reference, out)
