"""`medprep maps` against scipy (and SimpleITK where installed), through the command line.

The oracle is scipy's `distance_transform_edt` applied exactly as docs/distance-maps.md says,
on the arrays nibabel (NIfTI, `arr[x, y, z]`) and Pillow (PNG, `arr[row, col]`) return.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

TOL = 1e-4


def blobs(shape, n_labels, seed):
    """Random overlapping balls (labels 1..n-1) on background 0."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    lab = np.zeros(shape, np.uint8)
    for label in range(1, n_labels):
        centre = [rng.uniform(0, s) for s in shape]
        radius = 1.5 + rng.uniform(0, max(shape) / 3)
        r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        lab[r2 < radius ** 2] = label
    return lab


def save(arr, path, zooms=None, affine=None):
    if affine is None:
        affine = np.diag(list(zooms or [1.0] * 3) + [1.0])
        affine[:3, 3] = [-3.0, 5.5, 12.0]
    img = nib.Nifti1Image(arr, affine)
    if zooms is not None:
        img.header.set_zooms(zooms)
    nib.save(img, str(path))
    return affine


def run_maps(medprep, mask, out, *args):
    proc = medprep("maps", mask, "--out", out, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def load(path):
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img


def boundary(m, sampling=None, h=1.0):
    """Kervadec's Boundary-loss SDF with medprep's h (1 px, or the smallest spacing in mm)."""
    if not m.any():
        return np.zeros(m.shape)
    inside = ndi.distance_transform_edt(m, sampling=sampling)
    outside = ndi.distance_transform_edt(~m, sampling=sampling)
    return outside * ~m - (inside - h) * m


def plain(m, sampling=None):
    if not m.any():
        return np.zeros(m.shape)
    return ndi.distance_transform_edt(~m, sampling=sampling) * ~m - ndi.distance_transform_edt(m, sampling=sampling)


def rrw(m, sampling=None):
    out = np.ones(m.shape)
    if m.any():
        d = ndi.distance_transform_edt(m, sampling=sampling)
        out[m] = -d[m] / d[m].max()
    return out


def close(got, want):
    err = np.max(np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want)))
    assert err <= TOL, f"max relative error {err}"


@pytest.mark.parametrize("units", ["px", "mm"])
def test_3d_maps_match_scipy(medprep, tmp_path, units):
    lab = blobs((20, 16, 12), 4, seed=1)
    zooms = (0.8, 1.1, 2.5)
    affine = save(lab, tmp_path / "m.nii.gz", zooms)
    info = run_maps(medprep, tmp_path / "m.nii.gz", tmp_path / "out", "--3d", "--units", units)
    assert info["mode"] == "3d" and info["classes"] == [0, 1, 2, 3]
    sdf, img = load(tmp_path / "out" / "sdf.nii.gz")
    rr, _ = load(tmp_path / "out" / "rrw.nii.gz")
    assert sdf.shape == (20, 16, 12, 4) and sdf.dtype == np.float32
    np.testing.assert_allclose(img.affine, affine, atol=1e-5)
    sampling = zooms if units == "mm" else None
    h = min(zooms) if units == "mm" else 1.0
    for k in range(4):
        close(sdf[..., k], boundary(lab == k, sampling, h))
        close(rr[..., k], rrw(lab == k, sampling))
    summary = info["scales"][0]["classes"]
    assert [c["voxels"] for c in summary] == [int((lab == k).sum()) for k in range(4)]


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_slice_maps_match_scipy_per_slice(medprep, tmp_path, axis):
    lab = blobs((14, 12, 6), 3, seed=2)
    lab[:, :, 2] = 1  # a slice filled by one class (only a full class along z)
    zooms = (0.7, 0.9, 3.0)
    save(lab, tmp_path / "m.nii", zooms)
    info = run_maps(medprep, tmp_path / "m.nii", tmp_path / "out", "--axis", axis, "--units", "mm", "--no-gzip")
    assert info["mode"] == f"slices along {axis}"
    sdf, _ = load(tmp_path / "out" / "sdf.nii")
    rr, _ = load(tmp_path / "out" / "rrw.nii")
    a = "xyz".index(axis)
    rest = [d for d in range(3) if d != a]
    sampling = tuple(zooms[d] for d in rest)
    for i in range(lab.shape[a]):
        sl = np.take(lab, i, axis=a)  # nibabel view of the slice: first axis = first remaining axis
        for k in range(3):
            got_s = np.take(sdf[..., k], i, axis=a)
            got_r = np.take(rr[..., k], i, axis=a)
            close(got_s, boundary(sl == k, sampling, min(sampling)))
            close(got_r, rrw(sl == k, sampling))


def test_full_class_follows_scipy_virtual_voxel_nifti(medprep, tmp_path):
    lab = np.ones((6, 5, 4), np.uint8)
    save(lab, tmp_path / "m.nii.gz", (1.5, 1.0, 2.0))
    run_maps(medprep, tmp_path / "m.nii.gz", tmp_path / "out", "--3d", "--units", "mm", "--classes", "0,1")
    sdf, _ = load(tmp_path / "out" / "sdf.nii.gz")
    rr, _ = load(tmp_path / "out" / "rrw.nii.gz")
    d = ndi.distance_transform_edt(lab, sampling=(1.5, 1.0, 2.0))  # virtual voxel at x = -1
    close(sdf[..., 1], -(d - 1.0))
    close(rr[..., 1], -d / d.max())
    assert np.all(sdf[..., 0] == 0) and np.all(rr[..., 0] == 1)  # empty class


def test_png_mask_and_full_class_on_rows(medprep, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    lab = blobs((24, 30), 4, seed=3)  # (rows, cols)
    Image.fromarray(lab, mode="L").save(tmp_path / "m.png")
    run_maps(medprep, tmp_path / "m.png", tmp_path / "out", "--classes", "0,1,2,3")
    sdf, _ = load(tmp_path / "out" / "sdf.nii.gz")
    rr, _ = load(tmp_path / "out" / "rrw.nii.gz")
    assert sdf.shape == (30, 24, 1, 4)  # [w, h, 1, K]
    for k in range(4):
        close(sdf[:, :, 0, k].T, boundary(lab == k))
        close(rr[:, :, 0, k].T, rrw(lab == k))
    # A class filling the image: scipy on Pillow's array measures to row -1.
    full = np.full((7, 9), 2, np.uint8)
    Image.fromarray(full, mode="L").save(tmp_path / "full.png")
    run_maps(medprep, tmp_path / "full.png", tmp_path / "full", "--rrw")
    rr, _ = load(tmp_path / "full" / "rrw.nii.gz")
    d = ndi.distance_transform_edt(full == 2)
    close(rr[:, :, 0, 2].T, -d / d.max())


def test_plain_convention(medprep, tmp_path):
    lab = blobs((18, 15), 3, seed=4)
    save(lab[:, :, None], tmp_path / "m.nii.gz", (0.6, 1.4, 1.0))
    run_maps(medprep, tmp_path / "m.nii.gz", tmp_path / "out", "--sdf", "--convention", "plain", "--units", "mm")
    assert not (tmp_path / "out" / "rrw.nii.gz").exists()
    sdf, _ = load(tmp_path / "out" / "sdf.nii.gz")
    for k in range(3):
        close(sdf[:, :, 0, k], plain(lab == k, (0.6, 1.4)))


def test_itk_convention_matches_simpleitk(medprep, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    lab = blobs((16, 13, 9), 3, seed=5)
    zooms = (0.9, 1.2, 2.0)
    save(lab, tmp_path / "m.nii.gz", zooms)
    run_maps(medprep, tmp_path / "m.nii.gz", tmp_path / "out", "--sdf", "--3d", "--convention", "itk", "--units", "mm")
    sdf, _ = load(tmp_path / "out" / "sdf.nii.gz")
    for k in range(3):
        m = (lab == k).astype(np.uint8)
        img = sitk.GetImageFromArray(m.transpose(2, 1, 0))  # sitk arrays are [z, y, x]
        img.SetSpacing(zooms)
        ref = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)).transpose(2, 1, 0)
        close(sdf[..., k], ref)


def test_scales_downsample_by_index_times_factor(medprep, tmp_path):
    lab = blobs((21, 17, 5), 3, seed=6)
    zooms = (0.5, 0.5, 2.0)
    affine = save(lab, tmp_path / "m.nii.gz", zooms)
    info = run_maps(medprep, tmp_path / "m.nii.gz", tmp_path / "out", "--scales", "1,2,4", "--units", "mm")
    assert [s["scale"] for s in info["scales"]] == [1, 2, 4]
    for s in (2, 4):
        sdf, img = load(tmp_path / "out" / f"sdf_s{s}.nii.gz")
        coarse = lab[::s, ::s, :]  # slices along z: z is not downsampled
        assert sdf.shape == coarse.shape + (3,)
        want_affine = affine.copy()
        want_affine[:3, 0] *= s
        want_affine[:3, 1] *= s
        np.testing.assert_allclose(img.affine, want_affine, atol=1e-5)
        sampling = (zooms[0] * s, zooms[1] * s)
        for z in range(coarse.shape[2]):
            for k in range(3):
                close(sdf[:, :, z, k], boundary(coarse[:, :, z] == k, sampling, min(sampling)))


def test_same_bytes_for_any_thread_count(medprep, tmp_path):
    lab = blobs((40, 33, 9), 4, seed=7)
    save(lab, tmp_path / "m.nii", (1.0, 1.0, 1.0))
    outs = []
    for t in (1, 2, 3):
        run_maps(medprep, tmp_path / "m.nii", tmp_path / f"o{t}", "--3d", "--threads", str(t), "--no-gzip")
        outs.append((tmp_path / f"o{t}" / "sdf.nii").read_bytes() + (tmp_path / f"o{t}" / "rrw.nii").read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_errors_name_the_problem(medprep, tmp_path):
    save(np.array([[[0.0, 1.5]]], np.float32), tmp_path / "f.nii")
    proc = medprep("maps", tmp_path / "f.nii", "--out", tmp_path / "o")
    assert proc.returncode == 1 and "'1.5'" in proc.stderr
    save(np.zeros((2, 2, 2), np.uint8), tmp_path / "z.nii")
    proc = medprep("maps", tmp_path / "z.nii", "--out", tmp_path / "o", "--scales", "3")
    assert proc.returncode == 64 and "'3'" in proc.stderr
    proc = medprep("maps", tmp_path / "missing.nii", "--out", tmp_path / "o")
    assert proc.returncode != 0 and "missing.nii" in proc.stderr
