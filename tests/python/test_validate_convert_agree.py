"""validate and convert agree on every dataset (issue 13): geometry differences between a case's
files just under and just over each tolerance of the one table (docs/validate.md: spacing 1e-3
relative, origin 0.01 mm, direction 0.1°), written with nibabel. The expected verdict comes from
the offset the test wrote, not from medprep: validate must report exactly the ones over a
tolerance as errors, and convert must refuse exactly those, naming the same check."""
import json
import math

import nibabel as nib
import numpy as np
import pytest

SHAPE = (12, 10, 4)
MANIFEST = """name: agree
cases:
  images: [{images}]
  mask: "masks/{{id}}.nii.gz"
labels:
  classes:
    - {{name: background, value: 0}}
    - {{name: a, value: 1}}
    - {{name: b, value: 2}}
"""


def base_affine():
    return np.diag([0.8, 0.9, 2.5, 1.0])


def rotated(affine, degrees):
    t = math.radians(degrees)
    r = np.eye(4)
    r[:2, :2] = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    return r @ affine


def write(path, data, affine):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def make_dataset(root, *, mask_affine=None, mask_shape=SHAPE, mask_frames=1, channel_affine=None):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, SHAPE).astype(np.int16)
    write(root / "images" / "c0.nii.gz", image, base_affine())
    templates = ["images/{id}.nii.gz"]
    if channel_affine is not None:
        write(root / "images" / "c0_t2.nii.gz", image[::-1].copy(), channel_affine)
        templates.append("images/{id}_t2.nii.gz")
    mask = np.zeros(mask_shape, np.uint8)
    mask[2:8, 2:7, :] = 1
    mask[4:6, 3:5, 1:3] = 2
    if mask_frames > 1:
        mask = np.stack([mask] * mask_frames, axis=-1)
    write(root / "masks" / "c0.nii.gz", mask, base_affine() if mask_affine is None else mask_affine)
    # the first template finds cases: keep the channel file out of it
    exclude = "\n  exclude: ['images/*_t2.nii.gz']" if channel_affine is not None else ""
    text = MANIFEST.format(images=", ".join(json.dumps(t) for t in templates)).replace('  mask: "masks/{id}.nii.gz"',
                                                                                  '  mask: "masks/{id}.nii.gz"' + exclude)
    (root / "manifest.yaml").write_text(text)
    return root


def shifted(d):
    a = base_affine().copy()
    a[0, 3] += d
    return a


def scaled(rel):
    a = base_affine().copy()
    a[0, 0] *= 1 + rel
    return a


#: (name, dataset arguments, the check that must fire or None)
VARIANTS = [
    ("origin-under", dict(mask_affine=shifted(0.005)), None),
    ("origin-over", dict(mask_affine=shifted(0.02)), "origin-mismatch"),
    ("spacing-under", dict(mask_affine=scaled(0.5e-3)), None),
    ("spacing-over", dict(mask_affine=scaled(2e-3)), "spacing-mismatch"),
    ("direction-under", dict(mask_affine=rotated(base_affine(), 0.05)), None),
    ("direction-over", dict(mask_affine=rotated(base_affine(), 0.2)), "direction-mismatch"),
    ("shape", dict(mask_shape=(12, 10, 5)), "shape-mismatch"),
    ("mask-frames", dict(mask_frames=2), "shape-mismatch"),
    ("channel-origin-under", dict(channel_affine=shifted(0.005)), None),
    ("channel-origin-over", dict(channel_affine=shifted(0.02)), "origin-mismatch"),
    ("channel-direction-over", dict(channel_affine=rotated(base_affine(), 0.2)), "direction-mismatch"),
]


@pytest.mark.parametrize("name,kwargs,expected", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_validate_verdict_predicts_convert(tmp_path, medprep, name, kwargs, expected):
    ds = make_dataset(tmp_path / "ds", **kwargs)
    v = medprep("validate", ds, "--json", "-")
    assert v.returncode in (0, 1), v.stderr
    report = json.loads(v.stdout)
    errors = sorted({f["code"] for f in report["findings"] if f["severity"] == "error"})
    assert errors == ([expected] if expected else []), f"{name}: validate reported {errors}"

    c = medprep("convert", ds, "--out", tmp_path / "out")
    if expected:
        assert c.returncode != 0, f"{name}: validate reported {expected} but convert accepted the case"
        assert expected in c.stderr, c.stderr
        assert not (tmp_path / "out" / "index.json").exists()
        # --allow-errors gets past validation; the case is still refused, by the same check
        c = medprep("convert", ds, "--out", tmp_path / "out2", "--allow-errors")
        assert c.returncode != 0 and expected in c.stderr, c.stderr
    else:
        assert c.returncode == 0, f"{name}: validate found no error but convert failed:\n{c.stderr}"
        index = json.loads((tmp_path / "out" / "index.json").read_text())
        assert index["sample_count"] == SHAPE[2]


def test_manifest_lookup_is_shared(tmp_path, medprep):
    """A manifest.yml next to a dataset.json: validate and convert both use the manifest (convert
    used to look for manifest.yaml only and fell back to nnU-Net defaults)."""
    ds = make_dataset(tmp_path / "ds")
    (ds / "manifest.yaml").rename(ds / "manifest.yml")
    (ds / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MR"}, "labels": {"background": 0, "x": 1}, "file_ending": ".nii.gz"}))
    v = json.loads(medprep("validate", ds, "--json", "-").stdout)["dataset"]
    assert v["manifest"].endswith("manifest.yml") and v["label_source"] == "manifest", v
    c = medprep("convert", ds, "--out", tmp_path / "out")
    assert c.returncode == 0, c.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["dataset"]["name"] == "agree"
    assert [k["name"] for k in index["classes"]] == ["background", "a", "b"]


def test_convert_without_declared_classes_says_so(tmp_path, medprep):
    """No manifest and no dataset.json: validate infers the classes, convert refuses by name."""
    ds = make_dataset(tmp_path / "ds")
    (ds / "manifest.yaml").unlink()
    v = json.loads(medprep("validate", ds, "--json", "-").stdout)["dataset"]
    assert v["label_source"] == "inferred"
    c = medprep("convert", ds, "--out", tmp_path / "out")
    assert c.returncode != 0
    assert "manifest init" in c.stderr and "classes must be declared" in c.stderr, c.stderr
