"""An independent numpy / nibabel / scipy / Pillow re-implementation of `medprep convert`'s per-case
pipeline, used as the oracle in test_convert.py. Nothing here calls medprep.

    read -> reorient (nibabel as_closest_canonical) -> resample (scipy.ndimage.zoom, grid_mode)
    -> normalise (z-score, optionally over the foreground) -> slice along z ([H, W] = [y, x])
    -> centre pad/crop (floor(d/2) before) -> per-class SDF / RRW (scipy distance_transform_edt)

Conventions followed (docs/normalisation.md, docs/shard-format.md, docs/distance-maps.md):
- new size per resampled axis: max(1, round(n * old / new)), numpy's round (half to even);
  zoom with order=1 (image) / order=0 (labels), grid_mode=True, mode='nearest';
- resampled affine: A @ M, M[a, a] = n / n', M[a, 3] = 0.5 * n / n' - 0.5;
- z-score: (x - mean) / max(std, 1e-8), population std, statistics over label > 0 for
  `zscore-foreground` (all voxels when a case has no foreground), over image != 0 (after
  resampling) for `zscore-nonzero`;
- padding: geometry.pad_value, or by default ('background') each channel's minimum over the
  normalised case;
- boundary SDF: EDT(not M) * (1 - M) - (EDT(M) - 1) * M; RRW: +1 outside, -d / max(d) inside;
  empty class: SDF all 0, RRW all +1;
- a class that fills the whole slice: scipy's virtual background voxel at index -1 on the array's
  first axis. For shards that is the row axis of the stored [H, W] plane ("y": scipy run on
  shard["label"][n] as a reader gets it; CaseProcessor passes virtualVoxelAxis .last since commit
  629cfcf), for 2D and 3D cases alike. `virtual_axis="x"` (scipy on the transposed plane, i.e. on
  nibabel's arr[:, :, k]) is kept for comparison.
- maps at scale s are computed on labels[::s, ::s].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage


@dataclass
class OracleCase:
    image: np.ndarray              # [N, C, H, W] float32
    label: np.ndarray              # [N, H, W] int
    slice_coord_mm: np.ndarray     # [N] float64
    slice_count: int
    maps: dict = field(default_factory=dict)   # name -> [N, K, h, w] float32 ("sdf", "rrw", "sdf_s2", ...)


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------

def new_size(n: int, old: float, new: float) -> int:
    return max(1, int(np.round(n * old / new)))


def resample(img: np.ndarray, lab: np.ndarray, affine: np.ndarray, zooms, target):
    """Resample image (order 1) and labels (order 0) to `target` spacing (None = keep the axis)."""
    shape = img.shape
    out_shape = [n if t is None else new_size(n, z, t) for n, z, t in zip(shape, zooms, target)]
    factors = [o / n for o, n in zip(out_shape, shape)]
    if list(out_shape) != list(shape):
        img = ndimage.zoom(img, factors, order=1, grid_mode=True, mode="nearest", output=np.float64)
        lab = ndimage.zoom(lab, factors, order=0, grid_mode=True, mode="nearest")
    assert list(img.shape) == out_shape and list(lab.shape) == out_shape, (img.shape, out_shape)
    m = np.eye(4)
    for a, (n, o) in enumerate(zip(shape, out_shape)):
        m[a, a] = n / o
        m[a, 3] = 0.5 * n / o - 0.5
    return img, lab, affine @ m


def shape_plane(plane: np.ndarray, h: int, w: int, fill=0) -> np.ndarray:
    """Centre pad or crop the last two axes to [h, w]: floor(d / 2) before, the rest after."""
    for axis, target in ((-2, h), (-1, w)):
        n = plane.shape[axis]
        if n < target:
            d = target - n
            pad = [(0, 0)] * plane.ndim
            pad[axis] = (d // 2, d - d // 2)
            plane = np.pad(plane, pad, constant_values=fill)
        elif n > target:
            d = n - target
            sl = [slice(None)] * plane.ndim
            sl[axis] = slice(d // 2, d // 2 + target)
            plane = plane[tuple(sl)]
    return plane


# ------------------------------------------------------------------------------------------------
# maps
# ------------------------------------------------------------------------------------------------

def _edt(mask: np.ndarray, virtual_axis: str) -> np.ndarray:
    if virtual_axis == "x":
        return ndimage.distance_transform_edt(mask.T).T
    return ndimage.distance_transform_edt(mask)


def class_maps(labels: np.ndarray, k: int, virtual_axis: str = "y"):
    """Boundary SDF and RRW of class k on one [H, W] label plane (float64)."""
    m = labels == k
    if not m.any():
        return np.zeros(labels.shape), np.ones(labels.shape)
    inside = _edt(m, virtual_axis)
    if m.all():
        outside = np.zeros(labels.shape)
    else:
        outside = ndimage.distance_transform_edt(~m)
    sdf = outside * (~m) - (inside - 1) * m
    rrw = np.where(m, -inside / inside[m].max(), 1.0)
    return sdf, rrw


def slice_maps(labels: np.ndarray, classes: int, scales, virtual_axis: str = "y") -> dict:
    out = {}
    for s in scales:
        lab = labels[::s, ::s]
        sdf = np.stack([class_maps(lab, k, virtual_axis)[0] for k in range(classes)])
        rrw = np.stack([class_maps(lab, k, virtual_axis)[1] for k in range(classes)])
        suffix = "" if s == 1 else f"_s{s}"
        out["sdf" + suffix] = sdf.astype(np.float32)
        out["rrw" + suffix] = rrw.astype(np.float32)
    return out


def pad_value(geometry: dict, channel: np.ndarray) -> float:
    """What padding holds: the manifest's pad_value, else the channel's minimum (its background)."""
    v = geometry.get("pad_value", "background")
    return float(channel.min()) if v == "background" else float(v)


def zscore(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    vals = img[mask] if mask is not None and mask.any() else img
    mean, std = vals.mean(dtype=np.float64), vals.std(dtype=np.float64)
    return (img - mean) / max(std, 1e-8)


# ------------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------------

def convert_volume(image_path: Path, mask_path: Path, manifest: dict, value_to_class: dict,
                   virtual_axis: str = "y") -> OracleCase:
    """One NIfTI case through the pipeline (slice axis z, orientation RAS)."""
    g = manifest["geometry"]
    assert g.get("orientation", "RAS") == "RAS" and g.get("slice_axis", "z") == "z"
    img_nii = nib.as_closest_canonical(nib.load(str(image_path)))
    lab_nii = nib.as_closest_canonical(nib.load(str(mask_path)))
    img = np.asarray(img_nii.get_fdata(dtype=np.float64))
    raw = np.asarray(lab_nii.dataobj).astype(np.int64)
    lab = np.vectorize(lambda v: value_to_class[int(v)])(raw) if raw.size else raw
    target = g.get("target_spacing")
    affine = img_nii.affine
    if target not in (None, "keep"):
        target = [None if t == "keep" else float(t) for t in target]
        img, lab, affine = resample(img, lab, affine, img_nii.header.get_zooms()[:3], target)
    mode = manifest.get("intensity", {}).get("mode", "zscore")
    if mode == "zscore":
        img = zscore(img, None)
    elif mode == "zscore-foreground":
        img = zscore(img, lab > 0)
    elif mode == "zscore-nonzero":
        img = zscore(img, img != 0)
    else:
        raise NotImplementedError(mode)
    nz = img.shape[2]
    h, w = g["size"]
    fill = pad_value(g, img)
    images, labels, coords = [], [], []
    for k in range(nz):
        plane = img[:, :, k].T                     # [y, x]
        lplane = lab[:, :, k].T
        images.append(shape_plane(plane, h, w, fill)[None].astype(np.float32))
        labels.append(shape_plane(lplane, h, w))
        coords.append(nib.affines.apply_affine(affine, [0, 0, k])[2])
    return _finish(images, labels, coords, nz, manifest, virtual_axis=virtual_axis)


def convert_image2d(image_path: Path, mask_path: Path, manifest: dict, virtual_axis: str = "y") -> OracleCase:
    """One PNG/JPEG case: rgb-01 image, grey-level or colour mask, one slice."""
    from PIL import Image

    g = manifest["geometry"]
    rgb = np.asarray(Image.open(image_path))
    if rgb.ndim == 2:
        rgb = rgb[:, :, None]
    assert manifest.get("intensity", {}).get("mode") == "rgb-01"
    scale = 65535 if rgb.dtype == np.uint16 else 255
    img = (rgb.astype(np.float32) / np.float32(scale)).transpose(2, 0, 1)   # [C, H, W]
    m = np.asarray(Image.open(mask_path))
    classes = manifest["labels"]["classes"]
    lab = np.full(m.shape[:2], -1, dtype=np.int64)
    for i, c in enumerate(classes):
        if "colour" in c:
            lab[np.all(m[:, :, :3] == np.array(c["colour"]), axis=-1)] = i
        else:
            lab[(m if m.ndim == 2 else m[:, :, 0]) == c.get("value", i)] = i
    assert (lab >= 0).all(), f"{mask_path}: values outside the class list"
    h, w = g.get("size") or lab.shape
    planes = [shape_plane(img[c], h, w, pad_value(g, img[c])) for c in range(img.shape[0])]
    return _finish([np.stack(planes)], [shape_plane(lab, h, w)], [0.0], 1, manifest, virtual_axis=virtual_axis)


def _finish(images, labels, coords, count, manifest, virtual_axis) -> OracleCase:
    maps_spec = manifest.get("maps", {})
    K = len(manifest["labels"]["classes"])
    out = OracleCase(image=np.stack(images), label=np.stack(labels), slice_coord_mm=np.array(coords), slice_count=count)
    if maps_spec.get("sdf", True) or maps_spec.get("rrw", True):
        per = [slice_maps(l, K, maps_spec.get("scales", [1]), virtual_axis) for l in out.label]
        for name in per[0]:
            kind = name.split("_")[0]
            if maps_spec.get(kind, True):
                out.maps[name] = np.stack([p[name] for p in per])
    return out


def full_class_mask(labels: np.ndarray, classes: int, scales) -> np.ndarray:
    """[N, K] per scale dict: True where class k fills the whole (downsampled) plane."""
    res = {}
    for s in scales:
        lab = labels[:, ::s, ::s]
        res[s] = np.stack([(lab == k).all(axis=(1, 2)) for k in range(classes)], axis=1)
    return res


def pcl_partition(i: int, n: int) -> int:
    return math.floor(4 * i / n) + 1
