#!/usr/bin/env python3
"""Loss comparison on a synthetic ordinal dataset with noisy boundaries: CE against the ordinal
losses (contact, qul, co2 by default), same folds, same seed, same model; prints the table and
each loss's contact-surface error relative to CE.

    .venv/bin/python tools/bench/compare_losses.py --medprep .build/release/medprep --out /tmp/cmp

What it does:
1. `medprep synth DIR --cases3d 24 --size3d 36,36,12` writes nested ordinal shells (background <
   outer < middle < core) as NIfTI volumes; the manifest's slice size is set to --slice-size (32).
   Small volumes make thin layers (the outer shell is about 3 pixels wide at 32 x 32), where an
   uncertain network can skip a layer and let classes two steps apart touch.
2. "Noisy boundaries": a copy of DIR/synth3d is perturbed with a seeded numpy RNG.
   Labels: every voxel looks at one random in-plane 4-neighbour and, when that neighbour has
   another class, takes its class with probability --flip (annotators disagreeing by a voxel);
   a flip that would make classes more than one step apart touch is undone, so the ordinal
   structure (nested shells, no background-middle contact) stays as it was. Images: an in-plane
   Gaussian blur of --blur voxels (edges become ramps) and Gaussian noise of --noise times the
   smallest gap between the classes' mean intensities. Headers and affines are kept
   (nib.Nifti1Image(new, img.affine, img.header)); the script checks each written affine.
3. `medprep convert` writes the shards (--force).
4. medprep_train.compare trains every loss in --losses on every fold with a small U-Net and
   writes OUT/compare/comparison.{md,csv,json,png}.
Dice and HD95 are measured against the perturbed labels; the contact-surface error and the
unimodal share use the predictions only. Not a timed test: a script that reports one run.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "trainer"))

OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # in-plane 4-neighbours (x, y)


def shifted(a: np.ndarray, dx: int, dy: int, fill) -> np.ndarray:
    """a moved so that out[x, y] = a[x + dx, y + dy]; outside the array: fill."""
    out = np.full_like(a, fill)
    xs = slice(max(dx, 0), a.shape[0] + min(dx, 0))
    ys = slice(max(dy, 0), a.shape[1] + min(dy, 0))
    xd = slice(max(-dx, 0), a.shape[0] + min(-dx, 0))
    yd = slice(max(-dy, 0), a.shape[1] + min(-dy, 0))
    out[xd, yd] = a[xs, ys]
    return out


def far_contact(lab: np.ndarray) -> np.ndarray:
    """Voxels with a 6-neighbour more than one class away (the ordinal violations)."""
    bad = np.zeros(lab.shape, bool)
    li = lab.astype(np.int16)
    for ax in range(lab.ndim):
        a = np.take(li, range(1, li.shape[ax]), axis=ax)
        b = np.take(li, range(0, li.shape[ax] - 1), axis=ax)
        d = np.abs(a - b) > 1
        pad_hi = [(0, 0)] * lab.ndim
        pad_lo = [(0, 0)] * lab.ndim
        pad_hi[ax] = (1, 0)
        pad_lo[ax] = (0, 1)
        bad |= np.pad(d, pad_hi) | np.pad(d, pad_lo)
    return bad


def noisy_labels(lab: np.ndarray, flip: float, rng: np.random.Generator) -> np.ndarray:
    """Boundary voxels take a random in-plane neighbour's class with probability flip; flips that
    create a far contact are undone until none is left."""
    pick = rng.integers(0, len(OFFSETS), size=lab.shape)
    neighbour = np.empty_like(lab)
    for i, (dx, dy) in enumerate(OFFSETS):
        n = shifted(lab, dx, dy, 0)
        neighbour[pick == i] = n[pick == i]
    flipped = (neighbour != lab) & (rng.random(lab.shape) < flip)
    out = np.where(flipped, neighbour, lab)
    before = far_contact(lab)
    for _ in range(64):
        undo = flipped & far_contact(out) & ~before
        if not undo.any():
            break
        out[undo] = lab[undo]
        flipped &= ~undo
    return out


def class_gap(img: np.ndarray, lab: np.ndarray, k: int) -> float:
    means = sorted(float(img[lab == c].mean()) for c in range(k) if (lab == c).any())
    return float(min(np.diff(means))) if len(means) > 1 else float(img.std())


def noisy_image(img: np.ndarray, gap: float, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage

    f = img.astype(np.float64)
    if blur > 0:
        f = ndimage.gaussian_filter(f, sigma=(blur, blur, 0))
    f = f + rng.normal(0.0, noise * gap, size=f.shape)
    info = np.iinfo(img.dtype) if np.issubdtype(img.dtype, np.integer) else None
    if info is not None:
        f = np.clip(np.rint(f), info.min, info.max)
    return f.astype(img.dtype)


def perturb(src: str, dst: str, flip: float, blur: float, noise: float, seed: int, slice_size: int) -> dict:
    """Copies synth3d to dst with noisy labels and images; returns per-case statistics."""
    import nibabel as nib

    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    m = os.path.join(dst, "manifest.yaml")
    text = open(m).read()
    if "size: [80, 80]" not in text:
        raise SystemExit(f"compare_losses: manifest '{m}' has no 'size: [80, 80]' line to set the slice size in.")
    open(m, "w").write(text.replace("size: [80, 80]", f"size: [{slice_size}, {slice_size}]"))
    rng = np.random.default_rng(seed)
    stats = {}
    for lab_path in sorted(glob.glob(os.path.join(dst, "labelsTr", "*.nii.gz"))):
        case = os.path.basename(lab_path)[: -len(".nii.gz")]
        img_path = os.path.join(dst, "imagesTr", f"{case}_0000.nii.gz")
        li, ii = nib.load(lab_path), nib.load(img_path)
        lab, img = np.asanyarray(li.dataobj), np.asanyarray(ii.dataobj)
        k = int(lab.max()) + 1
        new_lab = noisy_labels(lab, flip, rng)
        new_img = noisy_image(img, class_gap(img, lab, k), blur, noise, rng)
        for path, ref, data in ((lab_path, li, new_lab), (img_path, ii, new_img)):
            out = nib.Nifti1Image(data.astype(ref.get_data_dtype()), ref.affine, ref.header)
            nib.save(out, path)
            back = nib.load(path)
            assert np.array_equal(back.affine, ref.affine) and back.shape == ref.shape, path
        stats[case] = {"changed_label_voxels": int((new_lab != lab).sum()), "voxels": int(lab.size),
                       "far_contact_voxels": int(far_contact(new_lab).sum())}
    return stats


def run(cmd, **kw):
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def report(out: str, base: str) -> None:
    rep = json.load(open(os.path.join(out, "comparison.json")))
    by = {l["loss"]: l["summary"] for l in rep["losses"]}
    for l in rep["losses"]:
        per = ", ".join(f"fold {f} {r.get('contact_surface_error', float('nan')):.4f}" for f, r in l["folds"].items())
        print(f"contact-surface error of {l['loss']} per fold: {per}")
    if base not in by or len(by) < 2:
        return
    for key in ("contact_surface_error", "mean_dice", "mean_hd95", "unimodal_share"):
        ref = (by[base].get(key) or {}).get("mean")
        if not ref:
            continue
        parts = [f"{name} {((s.get(key) or {}).get('mean') or float('nan')) / ref:.2f}x" for name, s in by.items() if name != base]
        print(f"{key} relative to {base}: " + ", ".join(parts))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--medprep", default=os.path.join(REPO, ".build", "release", "medprep"))
    p.add_argument("--out", default="/tmp/medprep-compare-losses", help="work folder; what a previous run wrote there is replaced")
    p.add_argument("--cases3d", type=int, default=24)
    p.add_argument("--size3d", default="36,36,12", help="synth volume size; small volumes give thin shells (default 36,36,12)")
    p.add_argument("--slice-size", type=int, default=32, help="slice size in the manifest (default 32)")
    p.add_argument("--flip", type=float, default=0.3, help="probability a boundary voxel takes a neighbour's class")
    p.add_argument("--blur", type=float, default=1.0, help="in-plane Gaussian blur of the images, voxels")
    p.add_argument("--noise", type=float, default=0.6, help="image noise std as a multiple of the smallest class gap")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbation and of training")
    p.add_argument("--losses", default="ce;contact;qul;co2")
    p.add_argument("--folds", default="all")
    p.add_argument("--train", default="--width 8 --depth 3 --epochs 25 --batch-size 8 --workers 0 --no-progress "
                                       "--overlays 0 --no-plots --threads 1 --device cpu",
                   help="options passed to medprep-train-compare (space-separated)")
    a = p.parse_args(argv)
    if not os.path.exists(a.medprep):
        raise SystemExit(f"compare_losses: medprep binary '{a.medprep}' not found; pass --medprep.")
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    synth = os.path.join(a.out, "synth")
    run([a.medprep, "synth", synth, "--cases3d", str(a.cases3d), "--cases2d", "0", "--size3d", a.size3d, "--force"],
        stdout=subprocess.DEVNULL)
    noisy = os.path.join(a.out, "synth3d-noisy")
    stats = perturb(os.path.join(synth, "synth3d"), noisy, a.flip, a.blur, a.noise, a.seed, a.slice_size)
    changed = sum(s["changed_label_voxels"] for s in stats.values()) / sum(s["voxels"] for s in stats.values())
    print(f"noisy boundaries: {100 * changed:.2f}% of label voxels moved (flip {a.flip}), far-contact voxels "
          f"{sum(s['far_contact_voxels'] for s in stats.values())}; image blur {a.blur} voxels, noise {a.noise} x class gap")
    shards = os.path.join(a.out, "shards")
    run([a.medprep, "convert", noisy, "--out", shards, "--force"], stdout=subprocess.DEVNULL)
    t1 = time.time()
    from medprep_train import compare

    cmp_out = os.path.join(a.out, "compare")
    rc = compare.main(["--index", os.path.join(shards, "index.json"), "--losses", a.losses, "--folds", a.folds,
                       "--out", cmp_out, "--seed", str(a.seed)] + a.train.split())
    if rc != 0:
        return rc
    report(cmp_out, a.losses.replace(",", ";").split(";")[0].strip())
    t2 = time.time()
    print(f"wall time: {t2 - t0:.0f} s (data {t1 - t0:.0f} s, training and validation {t2 - t1:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
