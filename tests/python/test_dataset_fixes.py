"""The correctness fixes of issue 13, each against an independent expectation (a hand count, numpy,
nibabel): fit modes that do what their names say, the foreground a crop cuts off reported,
padding with the normalised background (or a manifest pad_value), `zscore-nonzero`, manifest
init's label-free normalisation choice, and one-sentence errors for bad choice values."""
import json

import nibabel as nib
import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors import safe_open


def dataset_2d(root, size, fit, h=40, w=40):
    """One 40x40 RGB PNG whose mask has a 36x20 rectangle (720 pixels) of grey level 255."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / "a.png")
    mask = np.zeros((h, w), np.uint8)
    mask[4:40, 10:30] = 255
    Image.fromarray(mask).save(root / "masks" / "a.png")
    manifest = {"name": "fit", "cases": {"images": "images/{id}.png", "mask": "masks/{id}.png"},
                "labels": {"classes": [{"name": "background", "value": 0}, {"name": "fg", "value": 255}]},
                "geometry": {"size": size, "fit": fit}, "intensity": {"mode": "rgb-01"}}
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root, mask


def read(out, name):
    index = json.loads((out / "index.json").read_text())
    parts = []
    for s in index["shards"]:
        with safe_open(str(out / s["file"]), framework="np") as f:
            parts.append(f.get_tensor(name))
    return index, np.concatenate(parts)


def test_pad_never_crops(tmp_path, medprep):
    ds, _ = dataset_2d(tmp_path / "ds", [20, 40], "pad")
    r = medprep("convert", ds, "--out", tmp_path / "out")
    assert r.returncode == 1
    assert "40x40 slices are larger than geometry.size 20x40" in r.stderr and "pad-or-crop" in r.stderr, r.stderr
    assert "case 'a'" in r.stderr and "Nothing was written" in r.stderr
    assert not (tmp_path / "out").exists()
    # --dry-run says the same from the headers
    d = medprep("convert", ds, "--out", tmp_path / "out", "--dry-run", "--json")
    assert d.returncode == 1 and "fit 'pad' never crops" in json.loads(d.stdout)["failure"]


def test_crop_never_pads(tmp_path, medprep):
    ds, _ = dataset_2d(tmp_path / "ds", [48, 40], "crop")
    r = medprep("convert", ds, "--out", tmp_path / "out")
    assert r.returncode == 1 and "fit 'crop' never pads" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_crop_crops_and_pad_or_crop_reports_the_foreground_lost(tmp_path, medprep):
    for fit in ("crop", "pad-or-crop"):
        ds, mask = dataset_2d(tmp_path / fit / "ds", [20, 40], fit)
        out = tmp_path / fit / "out"
        r = medprep("convert", ds, "--out", out, "--json")
        assert r.returncode == 0, r.stderr
        index, label = read(out, "label")
        kept = (mask[10:30] > 0).sum()                     # centre crop of 40 rows to 20: rows 10..29
        assert kept == 400 and (mask > 0).sum() == 720
        assert (label > 0).sum() == kept
        assert np.array_equal(label[0], (mask[10:30] > 0).astype(label.dtype))
        assert index["cases"][0]["foreground_pixels_cropped"] == 720 - 400
        assert json.loads(r.stdout)["foreground_pixels_cropped"] == {"a": 320}
        assert "cut off 320 foreground pixels" in r.stderr


def volume_dataset(root, pad_value=None, mode="zscore-nonzero"):
    """One 12x10x3 volume: a zero frame around a 6x6 block of tissue, padded to 16x16 slices."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    img = np.zeros((12, 10, 3), np.float32)
    rng = np.random.default_rng(2)
    img[3:9, 2:8, :] = rng.normal(300, 40, (6, 6, 3))
    lab = np.zeros(img.shape, np.uint8)
    lab[4:7, 3:6, :] = 1
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "imagesTr" / "v_0000.nii.gz"))
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "labelsTr" / "v.nii.gz"))
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MR"}, "labels": {"background": 0, "x": 1},
                                                   "file_ending": ".nii.gz"}))
    g = {"size": [16, 16], "fit": "pad"}
    if pad_value is not None:
        g["pad_value"] = pad_value
    (root / "manifest.yaml").write_text(yaml.safe_dump({"name": "v", "layout": "nnunet", "geometry": g,
                                                        "intensity": {"mode": mode}}))
    return root, img


@pytest.mark.parametrize("pad_value", [None, 0.5])
def test_zscore_nonzero_and_pad_value(tmp_path, medprep, pad_value):
    ds, img = volume_dataset(tmp_path / "ds", pad_value)
    out = tmp_path / "out"
    r = medprep("convert", ds, "--out", out)
    assert r.returncode == 0, r.stderr
    index, image = read(out, "image")
    nz = img[img != 0].astype(np.float64)
    expected = (img.astype(np.float64) - nz.mean()) / nz.std()
    fill = expected.min() if pad_value is None else pad_value
    # slices [y, x] of RAS z, centre padded from 10x12 to 16x16: rows 3..12, columns 2..13
    for k in range(3):
        want = np.full((16, 16), fill)
        want[3:13, 2:14] = expected[:, :, k].T
        np.testing.assert_allclose(image[k, 0], want, rtol=0, atol=1e-5)
    entry = index["normalisation"]["cases"][0]
    np.testing.assert_allclose(entry["pad_values"], [fill], atol=1e-6)
    assert entry["channels"][0]["nonzero_only"] is True
    np.testing.assert_allclose(entry["channels"][0]["mean"], nz.mean(), rtol=1e-9)


def test_manifest_init_picks_a_label_free_normalisation(tmp_path, medprep):
    """nnU-Net's rule: non-zero statistics when the non-zero box is under 3/4 of the volume."""
    ds, img = volume_dataset(tmp_path / "small-box")
    (ds / "manifest.yaml").unlink()
    r = medprep("manifest", "init", ds)
    assert r.returncode == 0, r.stderr
    box = 6 * 6 * 3 / img.size
    assert box < 0.75
    assert yaml.safe_load((ds / "manifest.yaml").read_text())["intensity"]["mode"] == "zscore-nonzero"
    full, _ = volume_dataset(tmp_path / "full-box")
    (full / "manifest.yaml").unlink()
    data = np.random.default_rng(3).normal(5, 1, (12, 10, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(full / "imagesTr" / "v_0000.nii.gz"))
    assert medprep("manifest", "init", full).returncode == 0
    assert yaml.safe_load((full / "manifest.yaml").read_text())["intensity"]["mode"] == "zscore"


@pytest.mark.parametrize("key,value,allowed", [
    ("geometry.slice_axis", "w", "'x', 'y' or 'z'"),
    ("geometry.fit", "squash", "'pad', 'crop', 'resize', 'pad-or-crop' or 'crop-foreground'"),
    ("intensity.mode", "zscore-fg", "'zscore'"),
    ("maps.units", "cm", "'px' or 'mm'"),
    ("maps.convention", "euclid", "'boundary', 'plain' or 'itk'"),
    ("dtypes.label", "int8", "'auto', 'uint8' or 'uint16'"),
    ("dtypes.image", "bfloat16", "'float32' or 'float16'"),
])
def test_bad_choice_is_one_sentence(tmp_path, medprep, key, value, allowed):
    ds, _ = volume_dataset(tmp_path / "ds")
    m = yaml.safe_load((ds / "manifest.yaml").read_text())
    section, field = key.split(".")
    m.setdefault(section, {})[field] = value
    (ds / "manifest.yaml").write_text(yaml.safe_dump(m))
    for cmd in (["validate", ds], ["convert", ds, "--out", tmp_path / "out"]):
        r = medprep(*cmd)
        assert r.returncode != 0
        assert f"manifest key '{key}' must be" in r.stderr and f"got '{value}'" in r.stderr, r.stderr
        assert allowed in r.stderr and "Cannot initialize" not in r.stderr, r.stderr


def test_duplicates_are_found_on_the_canonical_image(tmp_path, medprep):
    """An LPS copy and an int16 copy with another scl_slope of one image: convert makes the same
    slices of all three (checked here), so validate must flag both copies; an image of the same
    grid with other content is not flagged."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(4)
    base = (rng.integers(0, 400, (14, 12, 5)) * 2).astype(np.int16)      # even: halving is exact
    lab = np.zeros(base.shape, np.uint8)
    lab[3:10, 2:9, 1:4] = 1
    aff = np.diag([0.9, 0.9, 2.0, 1.0])
    lps = aff.copy()
    lps[0, 0] = lps[1, 1] = -0.9
    lps[0, 3], lps[1, 3] = 0.9 * 13, 0.9 * 11                             # same world grid, x and y stored reversed
    other = rng.integers(0, 800, base.shape).astype(np.int16)
    cases = {"a": (base, lab, aff, None), "b_lps": (base[::-1, ::-1].copy(), lab[::-1, ::-1].copy(), lps, None),
             "c_slope": ((base // 2).astype(np.int16), lab, aff, 2.0), "d_other": (other, lab, aff, None)}
    for cid, (img, m, a, slope) in cases.items():
        nii = nib.Nifti1Image(img, a)
        if slope is not None:
            nii.header.set_slope_inter(slope, 0.0)
        nib.save(nii, str(root / "images" / f"{cid}.nii.gz"))
        nib.save(nib.Nifti1Image(m, a), str(root / "masks" / f"{cid}.nii.gz"))
    (root / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "dup", "cases": {"images": "images/{id}.nii.gz", "mask": "masks/{id}.nii.gz"},
        "labels": {"classes": [{"name": "background", "value": 0}, {"name": "x", "value": 1}]},
        "geometry": {"size": [16, 16]}, "intensity": {"mode": "zscore"}, "folds": {"k": 2}}))
    # the premise, independently: nibabel sees one canonical image (up to the scaling)
    canon = {c: nib.as_closest_canonical(nib.load(str(root / "images" / f"{c}.nii.gz"))).get_fdata() for c in cases}
    assert np.array_equal(canon["a"], canon["b_lps"]) and np.array_equal(canon["a"], canon["c_slope"])
    report = json.loads(medprep("validate", root, "--json", "-").stdout)
    dups = {f["case"]: f["details"]["duplicate_of"] for f in report["findings"] if f["code"] == "duplicate-case"}
    assert dups == {"b_lps": "a", "c_slope": "a"}, dups
    out = tmp_path / "out"
    assert medprep("convert", root, "--out", out, "--allow-errors").returncode == 0
    index, image = read(out, "image")
    r = {c["id"]: c["slice_range"] for c in index["cases"]}
    sl = {cid: image[r[cid]["first_sample"]:r[cid]["first_sample"] + r[cid]["count"]] for cid in r}
    assert np.array_equal(sl["a"], sl["b_lps"]) and np.array_equal(sl["a"], sl["c_slope"])
    assert not np.array_equal(sl["a"], sl["d_other"])


def test_thumbnails_are_canonical_captioned_and_outlined(tmp_path, medprep):
    """An RAS case and its LPS-stored twin, each with one undeclared mask value: their thumbnails
    show the same picture (the slice as convert cuts it), the offending voxel outlined where
    nibabel's canonical array puts it, under a caption naming the case and the finding."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(5)
    img = rng.integers(0, 1000, (20, 16, 4)).astype(np.int16)
    lab = np.zeros(img.shape, np.uint8)
    lab[4:14, 3:12, :] = 1
    lab[3, 5, 2] = 7                                   # undeclared: the voxel validate marks
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    lps = aff.copy()
    lps[0, 0] = lps[1, 1] = -1.0
    lps[0, 3], lps[1, 3] = 19.0, 15.0
    for cid, (i, m, a) in {"ras": (img, lab, aff), "lps": (img[::-1, ::-1].copy(), lab[::-1, ::-1].copy(), lps)}.items():
        nib.save(nib.Nifti1Image(i, a), str(root / "images" / f"{cid}.nii.gz"))
        nib.save(nib.Nifti1Image(m, a), str(root / "masks" / f"{cid}.nii.gz"))
    (root / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "thumbs", "cases": {"images": "images/{id}.nii.gz", "mask": "masks/{id}.nii.gz"},
        "labels": {"classes": [{"name": "background", "value": 0}, {"name": "x", "value": 1}]}}))
    thumbs = tmp_path / "thumbs"
    medprep("validate", root, "--thumbnails", thumbs)
    a = np.asarray(Image.open(thumbs / "ras.png").convert("RGB"))
    b = np.asarray(Image.open(thumbs / "lps.png").convert("RGB"))
    f = 8                                               # 512 // 20, capped at 8
    h, w = 16 * f, 20 * f                               # canonical [y, x] plane, enlarged
    margin, top = 16, 16 + 3 * 22 + 6
    pa, pb = a[top:top + h, margin:margin + w], b[top:top + h, margin:margin + w]
    assert a.shape == b.shape and np.array_equal(pa, pb)
    # where nibabel's canonical array has the undeclared voxel: row y, column x of slice z
    canon = nib.as_closest_canonical(nib.load(str(root / "masks" / "lps.nii.gz"))).get_fdata()
    x, y, z = map(int, np.argwhere(canon == 7)[0])
    assert (x, y, z) == (3, 5, 2)
    block = pa[y * f:(y + 1) * f, x * f:(x + 1) * f]
    assert (block[0] == [255, 0, 255]).all() and (block[:, 0] == [255, 0, 255]).all()
    assert not (pa == [255, 0, 255]).all(axis=-1)[:y * f].any()          # nothing else outlined above it
    # a caption: text pixels above the image
    assert (a[:top] != a[0, 0]).any()
