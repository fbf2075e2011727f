"""Shard format oracle tests: Python's safetensors and jsonschema, live.

- The committed oracle files (tools/fixtures/make_safetensors_fixtures.py) are what Python's
  safetensors writes today: regenerating them gives the same bytes.
- Every hostile file is rejected (or, for the few where medprep is stricter, accepted) by the Rust
  crate exactly as Tests/Fixtures/safetensors/hostile/expected_errors.json records.
- The float16 oracle matches numpy's astype(np.float16).
- The shard fixtures follow docs/shard-format.md (position, pcl_partition, class_presence,
  shapes), checked from the file alone.
- Schemas/shard-index.schema.json is a valid draft 2020-12 schema; the example index in
  docs/shard-format.md equals Tests/Fixtures/safetensors/example-index.json and validates;
  typical mistakes do not validate; the example also satisfies the rules the schema cannot express.
- The 10-line reading snippet in docs/shard-format.md runs on a fixture shard.

None of these needs the medprep binary.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors
from jsonschema import Draft202012Validator
from safetensors.numpy import load_file

from conftest import FIXTURES, ROOT

ST = FIXTURES / "safetensors"
SCHEMA = json.loads((ROOT / "Schemas" / "shard-index.schema.json").read_text())
DOC = (ROOT / "docs" / "shard-format.md").read_text()
EXAMPLE = json.loads((ST / "example-index.json").read_text())
HOSTILE = json.loads((ST / "hostile" / "expected_errors.json").read_text())
EXPECTED = json.loads((ST / "expected.json").read_text())


def doc_block(marker: str, lang: str) -> str:
    m = re.search(r"<!-- " + re.escape(marker) + r".*?-->\s*```" + lang + r"\n(.*?)```", DOC, re.S)
    assert m, f"docs/shard-format.md has no ```{lang} block after '<!-- {marker}'"
    return m.group(1)


# ----------------------------------------------------------------------------------------------
# safetensors fixtures against the live library
# ----------------------------------------------------------------------------------------------

def test_fixtures_are_what_python_writes_today():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "fixtures" / "make_safetensors_fixtures.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_matches_rust_crate(name):
    data = (ST / "hostile" / name).read_bytes()
    try:
        safetensors.deserialize(data)
        rejected = False
    except Exception:  # noqa: BLE001
        rejected = True
    assert rejected == HOSTILE[name]["rust_rejects"], HOSTILE[name]["why"]


def test_f16_oracle_is_numpy():
    t = load_file(ST / "f16_rounding.safetensors")
    with np.errstate(over="ignore"):
        again = t["input"].astype(np.float16)
    assert again.view(np.uint16).tolist() == t["expected"].view(np.uint16).tolist()


@pytest.mark.parametrize("name", sorted(EXPECTED["shards"]))
def test_shard_fixture_follows_the_documented_layout(name):
    t = load_file(ST / "oracle" / name)
    with safetensors.safe_open(str(ST / "oracle" / name), framework="np") as f:
        meta = f.metadata()
    n = int(meta["sample_count"])
    assert meta["format"] == "medprep-shard" and meta["format_version"] == "1"
    _, c, h, w = t["image"].shape
    k = t["class_presence"].shape[1]
    assert t["image"].shape[0] == n and t["image"].dtype in (np.float32, np.float16)
    assert t["label"].shape == (n, h, w) and t["label"].dtype == (np.uint16 if k > 255 else np.uint8)
    i, cnt = t["slice_index"].astype(np.int64), t["slice_count"].astype(np.int64)
    assert np.array_equal(t["position"], (i + 1) / cnt)
    assert np.array_equal(t["pcl_partition"], (4 * i) // cnt + 1)
    presence = np.stack([np.isin(np.arange(k), t["label"][j]) for j in range(n)]).astype(np.uint8)
    assert np.array_equal(t["class_presence"], presence)
    for key, a in t.items():
        mm = re.fullmatch(r"(sdf|rrw)(?:_s(\d+))?", key)
        if mm:
            s = int(mm.group(2) or 1)
            assert a.shape == (n, k, -(-h // s), -(-w // s)) and a.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# index schema
# ----------------------------------------------------------------------------------------------

def validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


def test_docs_example_is_the_committed_example():
    assert json.loads(doc_block("example-index", "json")) == EXAMPLE


def test_example_index_validates():
    errors = sorted(validator().iter_errors(EXAMPLE), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def check_invariants(index: dict) -> None:
    """The rules docs/shard-format.md lists that JSON Schema cannot express."""
    assert [c["index"] for c in index["classes"]] == list(range(len(index["classes"])))
    assert [c["case_index"] for c in index["cases"]] == list(range(len(index["cases"])))
    assert all(0 <= c["fold"] < index["folds"]["k"] for c in index["cases"])
    nxt = 0
    for s in index["shards"]:
        assert s["first_sample"] == nxt
        nxt += s["sample_count"]
    assert nxt == index["sample_count"]
    nxt = 0
    for c in index["cases"]:
        assert c["slice_range"]["first_sample"] == nxt
        nxt += c["slice_range"]["count"]
    assert nxt == index["sample_count"]


def test_example_index_satisfies_the_other_rules():
    check_invariants(EXAMPLE)


def _drop(path):
    def f(d):
        *head, last = path
        for p in head:
            d = d[p]
        del d[last]
    return f


def _set(path, value):
    def f(d):
        *head, last = path
        for p in head:
            d = d[p]
        d[last] = value
    return f


MISTAKES = {
    "missing format": _drop(["format"]),
    "wrong format": _set(["format"], "medprep-shards"),
    "format_version as string": _set(["format_version"], "1"),
    "unknown top-level key": _set(["extra"], 1),
    "missing cases": _drop(["cases"]),
    "short sha256": _set(["manifest_sha256"], "abc"),
    "upper-case sha256": _set(["shards", 0, "sha256"], "A" * 64),
    "shard file name": _set(["shards", 0, "file"], "shard-0.safetensors"),
    "shard without samples": _set(["shards", 0, "sample_count"], 0),
    "shard unknown key": _set(["shards", 0, "path"], "x"),
    "negative first_sample": _set(["shards", 1, "first_sample"], -1),
    "class with both value kinds": _set(["classes", 0, "colours"], [[0, 0, 0]]),
    "class with neither value kind": _drop(["classes", 1, "source_values"]),
    "colour out of range": lambda d: (d["classes"][0].pop("source_values"), d["classes"][0].update(colours=[[0, 0, 256]])),
    "source role": _set(["cases", 0, "sources", 1, "role"], "label"),
    "sources without an image": lambda d: d["cases"][0].update(sources=[d["cases"][0]["sources"][1]]),
    "slice axis as a number": _set(["cases", 0, "slice_axis"], 2),
    "affine 3x4": _set(["cases", 0, "original_geometry", "affine"], [[1, 0, 0, 0]] * 3),
    "orientation code": _set(["cases", 0, "original_geometry", "orientation"], "RASX"),
    "zero spacing": _set(["cases", 0, "original_geometry", "spacing"], [0, 1, 1]),
    "case unknown key": _set(["cases", 0, "slices"], 2),
    "empty slice range": _set(["cases", 0, "slice_range", "count"], 0),
    "maps convention": _set(["maps", "convention"], "kervadec"),
    "maps units": _set(["maps", "units"], "cm"),
    "maps scale 0": _set(["maps", "scales"], [0, 1]),
    "maps missing rrw": _drop(["maps", "rrw"]),
    "ordinal as string": _set(["ordinal"], "true"),
    "folds without seed": _drop(["folds", "seed"]),
    "skipped without reason": _set(["skipped_cases", 0], {"id": "x"}),
    "parameters not an object": _set(["parameters"], []),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_schema_catches(mistake):
    doc = copy.deepcopy(EXAMPLE)
    MISTAKES[mistake](doc)
    assert list(validator().iter_errors(doc)), f"schema accepted: {mistake}"


def test_parameters_are_free_form():
    doc = copy.deepcopy(EXAMPLE)
    doc["parameters"]["anything"] = {"nested": [1, "two", None]}
    assert not list(validator().iter_errors(doc))


def test_normalisation_is_closed():
    """normalisation has a structure (the typed ShardIndex reads it): unknown keys and the
    pre-channels per-case form are refused."""
    doc = copy.deepcopy(EXAMPLE)
    doc["normalisation"]["more"] = 1
    assert list(validator().iter_errors(doc))
    doc = copy.deepcopy(EXAMPLE)
    doc["normalisation"]["cases"][0] = {"case_index": 0, "mean": [1.0], "std": [2.0]}
    assert list(validator().iter_errors(doc))
    doc = copy.deepcopy(EXAMPLE)
    doc["normalisation"]["cases"][0]["channels"][0]["mean"] = None  # a channel without finite voxels
    assert not list(validator().iter_errors(doc))


# ----------------------------------------------------------------------------------------------
# the reading snippet in the docs
# ----------------------------------------------------------------------------------------------

def test_reading_snippet_runs(tmp_path):
    name = "shard_f32.safetensors"
    shutil.copy(ST / "oracle" / name, tmp_path / "shard-00000.safetensors")
    index = copy.deepcopy(EXAMPLE)
    index["shards"] = [{"file": "shard-00000.safetensors", "sha256": "0" * 64, "bytes": 1, "sample_count": 3,
                        "first_sample": 0}]
    (tmp_path / "index.json").write_text(json.dumps(index))
    code = doc_block("snippet:read-shard", "python")
    assert len(code.strip().splitlines()) <= 10
    scope: dict = {}
    exec(compile(code.replace('root = "out"', f'root = {str(tmp_path)!r}'), "shard-format.md", "exec"), scope)
    spec = EXPECTED["shards"][name]
    lay = spec["layout"]
    assert scope["image"].shape == (3, lay["channels"], lay["height"], lay["width"])
    assert scope["label"].shape == (3, lay["height"], lay["width"])
    assert scope["meta"]["format"] == "medprep-shard"
    assert scope["sdf0"].shape == (lay["class_count"], lay["height"], lay["width"])
    assert np.array_equal(scope["sdf0"].reshape(-1), np.array(spec["samples"][0]["sdf"]["1"], dtype=np.float32))
    assert np.array_equal(scope["p"], [(s["slice_index"] + 1) / s["slice_count"] for s in spec["samples"]])
