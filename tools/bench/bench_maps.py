#!/usr/bin/env python3
"""Distance maps: medprep vs seung-lab `edt` vs scipy on the same inputs, in one run.

    .venv/bin/python tools/bench/bench_maps.py [--medprep .build/release/medprep] [--repeat 3]

Inputs (generated here, deterministic; written with nibabel as uint8 NIfTI):
  (a) a 256x256x128 volume (numpy (z, y, x) = (128, 256, 256)) with 4 labels: background and three
      overlapping ellipsoids (77 %, 19 %, 2.7 %, 1 % of the voxels);
  (b) a 512x512 slice with 4 classes: background, a large ellipse, a ring and a small disc.

Work timed (the same maps on every side, all in memory; reading and writing files excluded):
  (a) every class's signed distance map, 3D:
      medprep  `maps vol.nii --sdf --3d --threads T`, compute time reported by the binary
               (`--timing --json`); T = 1 and 2 alternate, best of 3 runs in each of
               max(--repeat, 5) processes;
      edt      `edt.sdf(labels == k, parallel=1)` for k = 0..3;
      scipy    `distance_transform_edt(~m)*~m - (distance_transform_edt(m) - 1)*m` per class.
  (b) SDF and RRW for all 4 classes of the slice:
      medprep  `maps slice.nii --sdf --rrw --threads 1`;
      edt      `edt.sdf` per class, plus one multi-label `edt.edt(labels + 1)` for the RRW inside
               distances of all classes (edt's fastest route; +1 because edt gives label 0
               distance 0) and the per-class -d/max(d) in numpy;
      scipy    per class distance_transform_edt(m) and (~m) (the inside EDT reused for RRW).
      --repeat rounds in which the three take turns (medprep 30 runs in one process, edt 10,
      scipy 3); the best time of each side is kept.

Goals (single-threaded, ratio = peer time / medprep time): at least 2x `edt` and 20x scipy on
both (a) and (b); with 2 threads, (a) at least 1.7x faster than medprep single-threaded.
Correctness: medprep's maps equal scipy's within 1e-4 (|a - b| / max(1, |b|)).
Timings on a shared 2-core machine are noisy: run it a couple of times. Needs numpy, scipy,
nibabel and edt (tools/requirements-test.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

try:
    import edt as edt_lib
except ImportError:  # pragma: no cover
    edt_lib = None

ROOT = Path(__file__).resolve().parents[2]


def volume_labels() -> np.ndarray:
    """(z, y, x) = (128, 256, 256) uint8 labels 0..3."""
    z, y, x = np.ogrid[:128, :256, :256]
    lab = np.zeros((128, 256, 256), np.uint8)
    lab[((z - 64) / 50.0) ** 2 + ((y - 128) / 100.0) ** 2 + ((x - 120) / 90.0) ** 2 < 1] = 1
    lab[((z - 70) / 30.0) ** 2 + ((y - 110) / 45.0) ** 2 + ((x - 150) / 40.0) ** 2 < 1] = 2
    lab[((z - 40) / 20.0) ** 2 + ((y - 190) / 30.0) ** 2 + ((x - 60) / 35.0) ** 2 < 1] = 3
    return lab


def slice_labels() -> np.ndarray:
    """(y, x) = (512, 512) uint8 labels 0..3."""
    y, x = np.ogrid[:512, :512]
    lab = np.zeros((512, 512), np.uint8)
    lab[((y - 250) / 180.0) ** 2 + ((x - 240) / 200.0) ** 2 < 1] = 1
    r = np.sqrt((y - 300.0) ** 2 + (x - 330.0) ** 2)
    lab[(r > 40) & (r < 70)] = 2
    lab[(y - 120) ** 2 + (x - 400) ** 2 < 30 ** 2] = 3
    return lab


def save_nifti(arr_zyx: np.ndarray, path: Path) -> np.ndarray:
    """Writes the (z, y, x) or (y, x) array as NIfTI; returns the nibabel view arr[x, y, (z)]."""
    xyz = np.ascontiguousarray(arr_zyx.T)
    nib.save(nib.Nifti1Image(xyz, np.eye(4)), str(path))
    return xyz


def kervadec(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary-loss SDF of one class with scipy, and the inside EDT (for RRW)."""
    inside = ndi.distance_transform_edt(m)
    outside = ndi.distance_transform_edt(~m)
    return outside * ~m - (inside - 1) * m, inside


def rrw_from_inside(m: np.ndarray, inside: np.ndarray) -> np.ndarray:
    out = np.ones(m.shape, np.float64)
    if m.any():
        out[m] = -inside[m] / inside[m].max()
    return out


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def run_medprep(binary: str, mask: Path, out: Path, extra: list[str], threads: int, repeat: int) -> tuple[float, float, dict]:
    cmd = [binary, "maps", str(mask), "--out", str(out), "--no-gzip", "--json", "--timing",
           "--threads", str(threads), "--repeat", str(repeat), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"medprep failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    info = json.loads(proc.stdout)
    return min(info["compute_seconds"]), wall, info


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b) / np.maximum(1.0, np.abs(b))))


def ratio_line(name: str, peer: float | None, ours: float, goal: float) -> str:
    if peer is None:
        return f"    vs {name:<6} n/a"
    r = peer / ours
    return f"    vs {name:<6} {peer:8.3f} s  -> {r:6.1f}x  (goal {goal:g}x: {'met' if r >= goal else 'NOT met'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--medprep", default=str(ROOT / ".build" / "release" / "medprep"))
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is kept (scipy (a): 1)")
    args = ap.parse_args()
    if not os.path.exists(args.medprep):
        sys.exit(f"{args.medprep} not found: run `swift build -c release` first")
    if edt_lib is None:
        print("note: the `edt` package is not installed; its column is skipped")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # ---------------------------------------------------------------- (a)
        lab = volume_labels()
        xyz = save_nifti(lab, tmp / "vol.nii")
        print(f"(a) 256x256x128 volume, 4 labels, every class's 3D signed distance map")
        # 1 and 2 threads alternate (best of each), so a burst of load on the machine hits both.
        best1 = best2 = (float("inf"), 0.0)
        # at least 5 rounds: the 2-thread figure needs both cores free at once, which a burst of
        # load elsewhere on this shared host often denies for a whole run
        for _ in range(max(5, args.repeat)):
            r1 = run_medprep(args.medprep, tmp / "vol.nii", tmp / "a1", ["--sdf", "--3d"], 1, 3)
            r2 = run_medprep(args.medprep, tmp / "vol.nii", tmp / "a2", ["--sdf", "--3d"], 2, 3)
            best1, best2 = min(best1, r1[:2]), min(best2, r2[:2])
        (ours1, wall1), (ours2, wall2) = best1, best2
        t_edt = None
        if edt_lib is not None:
            t_edt, _ = best(lambda: [edt_lib.sdf(xyz == k, parallel=1) for k in range(4)], args.repeat)
        t_scipy, ref = best(lambda: [kervadec(xyz == k)[0] for k in range(4)], 1)
        got = np.asarray(nib.load(str(tmp / "a1" / "sdf.nii")).dataobj)
        got2 = np.asarray(nib.load(str(tmp / "a2" / "sdf.nii")).dataobj)
        err = max(max_rel(got[..., k], ref[k]) for k in range(4))
        same = np.array_equal(got.view(np.uint32), got2.view(np.uint32))
        print(f"  medprep 1 thread  {ours1:8.3f} s (process wall {wall1:.2f} s incl. read/write)")
        print(ratio_line("edt", t_edt, ours1, 2))
        print(ratio_line("scipy", t_scipy, ours1, 20))
        r2 = ours1 / ours2
        print(f"  medprep 2 threads {ours2:8.3f} s  -> {r2:.2f}x single-threaded (goal 1.7x: {'met' if r2 >= 1.7 else 'NOT met'})")
        print(f"  max rel. difference from scipy {err:.2e} (limit 1e-4); 1 vs 2 threads identical: {same}")
        ok &= err <= 1e-4 and same
        # ---------------------------------------------------------------- (b)
        sl = slice_labels()
        xy = save_nifti(sl, tmp / "slice.nii")
        # A few ms per run on every side: many runs, in --repeat rounds where the three sides take
        # turns (a burst of load on this shared machine then hits every side), best of each kept.
        rep_b = 30
        print(f"(b) 512x512 slice, 4 classes, SDF and RRW for every class")

        def edt_b():
            sdfs = [edt_lib.sdf(xy == k, parallel=1) for k in range(4)]
            # edt treats label 0 as background (distance 0 there): shift so class 0 is a label too.
            d = edt_lib.edt(xy.astype(np.uint16) + 1, parallel=1)
            rrws = []
            for k in range(4):
                m = xy == k
                r = np.ones(xy.shape, np.float32)
                if m.any():
                    r[m] = -d[m] / d[m].max()
                rrws.append(r)
            return sdfs, rrws

        def scipy_b():
            sdfs, rrws = [], []
            for k in range(4):
                m = xy == k
                s, inside = kervadec(m)
                sdfs.append(s)
                rrws.append(rrw_from_inside(m, inside))
            return sdfs, rrws

        ours_b = wall_b = t_edt_b = t_scipy_b = float("inf")
        for _ in range(max(1, args.repeat)):
            o, w, _ = run_medprep(args.medprep, tmp / "slice.nii", tmp / "b", ["--sdf", "--rrw"], 1, rep_b)
            ours_b, wall_b = min(ours_b, o), min(wall_b, w)
            if edt_lib is not None:
                t_edt_b = min(t_edt_b, best(edt_b, rep_b // 3)[0])
            t, (ref_s, ref_r) = best(scipy_b, 3)
            t_scipy_b = min(t_scipy_b, t)
        if edt_lib is None:
            t_edt_b = None
        gs = np.asarray(nib.load(str(tmp / "b" / "sdf.nii")).dataobj)
        gr = np.asarray(nib.load(str(tmp / "b" / "rrw.nii")).dataobj)
        err_b = max(max(max_rel(gs[:, :, 0, k], ref_s[k]), max_rel(gr[:, :, 0, k], ref_r[k])) for k in range(4))
        print(f"  medprep 1 thread  {ours_b * 1e3:8.2f} ms (process wall {wall_b:.2f} s incl. read/write)")
        for name, peer, goal in (("edt", t_edt_b, 2), ("scipy", t_scipy_b, 20)):
            if peer is None:
                print(f"    vs {name:<6} n/a")
            else:
                r = peer / ours_b
                print(f"    vs {name:<6} {peer * 1e3:8.2f} ms -> {r:6.1f}x  (goal {goal}x: {'met' if r >= goal else 'NOT met'})")
        print(f"  max rel. difference from scipy {err_b:.2e} (limit 1e-4)")
        ok &= err_b <= 1e-4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
