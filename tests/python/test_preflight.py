"""convert's preflight and --dry-run: the plan from headers alone against what convert then writes.

- the projected shard bytes equal the bytes convert writes (online, dense: exactly; compact: the
  written size lies in the projected range), for 3D NIfTI (reoriented, resampled) and 2D sets;
- --dry-run writes nothing; a dataset that will fail (slices of different sizes and no
  geometry.size, a filesystem too small for the shards) fails before OUT exists, with the numbers;
- the plan's slice counts and spacings equal nibabel's view of each case.
"""
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from PIL import Image


@pytest.fixture(scope="module")
def synth(tmp_path_factory, medprep):
    d = tmp_path_factory.mktemp("preflight")
    proc = medprep("synth", d, "--cases3d", 3, "--cases2d", 3, "--size3d", "40,36,10")
    assert proc.returncode == 0, proc.stderr
    return d


def with_storage(src: Path, dst: Path, storage: str, **extra) -> Path:
    shutil.copytree(src, dst)
    m = yaml.safe_load((dst / "manifest.yaml").read_text())
    m["maps"]["storage"] = storage
    m["shard_size"] = 5
    for k, v in extra.items():
        m[k] = v
    (dst / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    return dst


def dry_run(medprep, data, out, ok=True):
    proc = medprep("convert", data, "--out", out, "--dry-run", "--json")
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["synth3d", "synth2d", "synth2d-colour"])
@pytest.mark.parametrize("storage", ["online", "dense", "compact"])
def test_projected_bytes_are_what_convert_writes(synth, medprep, tmp_path, name, storage):
    data = with_storage(synth / name, tmp_path / "data", storage)
    out = tmp_path / "out"
    plan = dry_run(medprep, data, out)
    assert not out.exists(), "--dry-run must write nothing"
    assert plan["will_fail"] is False and plan["storage"] == storage
    proc = medprep("convert", data, "--out", out)
    assert proc.returncode == 0, proc.stderr
    index = json.loads((out / "index.json").read_text())
    written = sum(s["bytes"] for s in index["shards"])
    assert plan["samples"] == index["sample_count"] and plan["shards"] == len(index["shards"])
    projected = plan["projected_bytes"][storage]
    if storage == "compact":
        assert projected["min"] <= written <= projected["max"]
    else:
        assert projected == written
    assert plan["needed_bytes"] == (projected["min"] if storage == "compact" else projected)
    # per-case geometry agrees with the index (spacing after resampling, slice counts)
    by_id = {c["id"]: c for c in index["cases"]}
    for g in plan["case_geometry"]:
        c = by_id[g["id"]]
        assert g["slices"] == c["slice_range"]["count"]
        assert g["slice_spacing_mm"] == c["slice_spacing_mm"]


def test_case_geometry_matches_nibabel(synth, medprep, tmp_path):
    """Slice count along z after reorientation to RAS and resampling to 1 mm in-plane (the synth
    manifest), from nibabel's reading of each image."""
    data = synth / "synth3d"
    m = yaml.safe_load((data / "manifest.yaml").read_text())
    plan = dry_run(medprep, data, tmp_path / "out")
    target = m["geometry"]["target_spacing"]
    for g in plan["case_geometry"]:
        img = nib.load(str(data / "imagesTr" / f"{g['id']}_0000.nii.gz"))
        ras = nib.as_closest_canonical(img)
        dims, zooms = ras.shape[:3], ras.header.get_zooms()[:3]
        want = [n if t == "keep" else max(1, int(np.round(n * z / t))) for n, z, t in zip(dims, zooms, target)]
        assert g["slices"] == want[2]
        assert g["source_slice"] == [want[1], want[0]]


def test_slices_of_different_sizes_fail_before_out_is_made(synth, medprep, tmp_path):
    data = with_storage(synth / "synth2d", tmp_path / "data", "online")
    m = yaml.safe_load((data / "manifest.yaml").read_text())
    m["geometry"].pop("size", None)
    (data / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    img = sorted((data / "images").glob("*.png"))[0]
    mask = data / "masks" / img.name
    Image.fromarray(np.asarray(Image.open(img))[:40]).save(img)
    Image.fromarray(np.asarray(Image.open(mask))[:40]).save(mask)
    out = tmp_path / "out"
    plan = dry_run(medprep, data, out, ok=False)
    assert "set geometry.size" in plan["failure"]
    proc = medprep("convert", data, "--out", out)
    assert proc.returncode == 1
    assert "preflight" in proc.stderr and "set geometry.size" in proc.stderr and "Nothing was written" in proc.stderr
    assert not out.exists()


@pytest.fixture
def small_filesystem(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_not_enough_disk_fails_before_writing(synth, medprep, tmp_path, small_filesystem):
    data = with_storage(synth / "synth3d", tmp_path / "data", "dense")
    out = small_filesystem / "out"
    plan = dry_run(medprep, data, out, ok=False)
    assert plan["needed_bytes"] > plan["free_bytes"]
    assert "has" in plan["failure"] and "free" in plan["failure"] and "'online' needs" in plan["failure"]
    proc = medprep("convert", data, "--out", out)
    assert proc.returncode == 1 and "the shards need" in proc.stderr, proc.stderr
    assert not out.exists()
    # the same data with online maps fits
    online = with_storage(synth / "synth3d", tmp_path / "data-online", "online")
    assert dry_run(medprep, online, out)["will_fail"] is False
    assert medprep("convert", online, "--out", out).returncode == 0
    assert medprep("verify", out).returncode == 0


def test_manifest_init_writes_online_storage_with_the_projection(synth, medprep, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth / "synth3d", data)
    (data / "manifest.yaml").unlink()
    proc = medprep("manifest", "init", data, "--out", "-")
    assert proc.returncode == 0, proc.stderr
    m = yaml.safe_load(proc.stdout)
    assert m["maps"]["storage"] == "online"
    line = next(l for l in proc.stdout.splitlines() if l.startswith("maps:") and "# projected shards:" in l)
    (data / "manifest.yaml").write_text(proc.stdout)
    plan = dry_run(medprep, data, tmp_path / "out")
    dense = plan["projected_bytes"]["dense"] / 2**20
    online = plan["projected_bytes"]["online"] / 2**20
    assert f"online {online:.1f} MiB" in line and f"dense {dense:.1f} MiB" in line, line
