"""Map storage modes written by convert, read without medprep.

- The rebuild snippet of docs/shard-format.md, run on compact shards, gives the dense shards'
  maps bit for bit (float32) for every sample; dense maps are checked against scipy in
  test_convert.py.
- Online shards hold no map tensors; verify accepts all three and inspect names the storage.
- --part / merge give the same shards as one run in compact and online storage (resume after a
  kill: test_convert.py).
"""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "shard-format.md").read_text()


def snippet(tag: str) -> str:
    m = re.search(r"<!-- " + re.escape(tag) + r".*?-->\s*```python\n(.*?)```", DOC, re.S)
    assert m, f"docs/shard-format.md has no {tag} block"
    return m.group(1)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, medprep):
    d = tmp_path_factory.mktemp("storage")
    assert medprep("synth", d / "src", "--cases3d", 3, "--cases2d", 1, "--size3d", "40,36,10").returncode == 0
    out = {}
    for storage in ("dense", "compact", "online"):
        data = d / f"data-{storage}"
        shutil.copytree(d / "src" / "synth3d", data)
        m = yaml.safe_load((data / "manifest.yaml").read_text())
        m["maps"]["storage"] = storage
        m["shard_size"] = 7
        (data / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
        o = d / f"out-{storage}"
        proc = medprep("convert", data, "--out", o)
        assert proc.returncode == 0, proc.stderr
        out[storage] = (data, o, json.loads((o / "index.json").read_text()))
    return out


def samples(out: Path, index: dict) -> dict:
    whole = {}
    for s in index["shards"]:
        for k, v in load_file(str(out / s["file"])).items():
            whole.setdefault(k, []).append((s["first_sample"], v))
    return whole


def test_rebuild_snippet_gives_the_dense_maps(outputs):
    _, dense_out, dense_index = outputs["dense"]
    _, out, index = outputs["compact"]
    assert index["maps"]["storage"] == "compact" and index["maps"]["rrw_from_sdf"] is True
    dense = {s["first_sample"]: load_file(str(dense_out / s["file"])) for s in dense_index["shards"]}
    code = compile(snippet("snippet:rebuild-maps"), "shard-format.md", "exec")
    checked = 0
    for s in index["shards"]:
        shard_path = str(out / s["file"])
        d = dense[s["first_sample"]]
        for row in range(s["sample_count"]):
            scope = {"shard_path": shard_path, "index": index, "row": row}
            exec(code, scope)
            assert scope["sdf"].tobytes() == d["sdf"][row].tobytes(), f"{s['file']} row {row} sdf"
            assert scope["rrw"].tobytes() == d["rrw"][row].tobytes(), f"{s['file']} row {row} rrw"
            checked += 1
    assert checked == index["sample_count"]


def test_online_shards_hold_no_maps_and_all_modes_verify(outputs, medprep):
    for storage, (_, out, index) in outputs.items():
        names = set().union(*(load_file(str(out / s["file"])).keys() for s in index["shards"]))
        has_maps = any(n.startswith(("sdf", "rrw")) for n in names)
        assert has_maps == (storage != "online"), storage
        proc = medprep("verify", out)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = medprep("inspect", out)
        assert f"storage {storage}" in proc.stdout, proc.stdout
    # the same image, label and per-slice tensors whatever the storage
    a = samples(outputs["dense"][1], outputs["dense"][2])
    b = samples(outputs["online"][1], outputs["online"][2])
    for k in ("image", "label", "position", "class_presence"):
        assert np.array_equal(np.concatenate([v for _, v in a[k]]), np.concatenate([v for _, v in b[k]]))


@pytest.mark.parametrize("storage", ["compact", "online"])
def test_parts_and_merge_equal_one_run(outputs, medprep, tmp_path, storage):
    data, whole, index = outputs[storage]
    out = tmp_path / "out"
    for i in range(2):
        proc = medprep("convert", data, "--out", out, "--part", f"{i}/2")
        assert proc.returncode == 0, proc.stderr
    assert medprep("merge", out).returncode == 0
    merged = json.loads((out / "index.json").read_text())
    assert merged["maps"] == index["maps"] and merged["sample_count"] == index["sample_count"]
    for key in ("slice_spacing_mm", "slice_step_mm"):
        assert [c[key] for c in merged["cases"]] == [c[key] for c in index["cases"]], key
    a, b = samples(whole, index), samples(out, merged)
    for k in a:
        assert np.array_equal(np.concatenate([v for _, v in a[k]]), np.concatenate([v for _, v in b[k]])), k
    assert medprep("verify", out).returncode == 0


def test_slice_step_is_the_resampled_spacing_along_the_slice_axis(outputs, medprep, tmp_path):
    """index.json's slice_step_mm against nibabel: the voxel size along the slice axis of the
    RAS-reoriented source when the manifest keeps it, the target when it resamples that axis."""
    import nibabel as nib
    data, _, index = outputs["online"]
    m = yaml.safe_load((data / "manifest.yaml").read_text())
    assert m["geometry"]["target_spacing"][2] == "keep" and m["geometry"]["slice_axis"] == "z"
    for c in index["cases"]:
        src = next(s["path"] for s in c["sources"] if s["role"] == "image")
        zooms = nib.as_closest_canonical(nib.load(str(data / src))).header.get_zooms()
        assert c["slice_step_mm"] == pytest.approx(float(zooms[2]), rel=1e-6), c["id"]
    # resampling the slice axis to 2.5 mm: the step is the target
    data2 = tmp_path / "data"
    shutil.copytree(data, data2)
    m["geometry"]["target_spacing"][2] = 2.5
    (data2 / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    assert medprep("convert", data2, "--out", tmp_path / "out").returncode == 0
    resampled = json.loads((tmp_path / "out" / "index.json").read_text())
    for c in resampled["cases"]:
        # docs/normalisation.md: n' = round(n * spacing / target), recorded spacing = spacing * n / n'
        src = next(s["path"] for s in c["sources"] if s["role"] == "image")
        img = nib.as_closest_canonical(nib.load(str(data2 / src)))
        n, sp = img.shape[2], float(img.header.get_zooms()[2])
        n2 = max(1, int(np.round(n * sp / 2.5)))
        assert c["slice_range"]["count"] == n2
        assert c["slice_step_mm"] == pytest.approx(sp * n / n2, rel=1e-9), c["id"]
