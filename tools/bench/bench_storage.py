#!/usr/bin/env python3
"""Shard size and convert time per map storage mode (maps.storage online / dense / compact),
against the size of the source .nii.gz files. One run, the same input for every mode; prints
ratios. Not a timed test.

    .venv/bin/python tools/bench/bench_storage.py [--medprep .build/release/medprep]

Inputs:
  a. the convert benchmark's input (tools/bench/bench_convert.py): `medprep synth` volumes of
     256 x 256 x 80..84 int16, 4 ordinal classes, slices 224 x 224, SDF + RRW at scale 1;
  b. many classes at 512²: volumes of 512 x 512 x 24 int16 written here with nibabel, 14 classes
     (13 random ellipsoids over background), slices 512 x 512, SDF + RRW at scale 1.

Modes: online (no maps stored), dense float32 (the format before storage modes), dense float16,
compact float32 and compact float16 (present classes only, RRW rebuilt from the SDF), some also
with float16 images (dtypes.image).
Goals (docs/benchmarks.md): online within 1.5x of the source size; compact at least 4x smaller
than dense float32; convert several times faster online than dense.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: (maps.storage, maps.dtype, dtypes.image)
MODES = [("online", "float32", "float32"), ("online", "float32", "float16"), ("dense", "float32", "float32"),
         ("dense", "float16", "float32"), ("compact", "float32", "float32"), ("compact", "float16", "float32"),
         ("compact", "float16", "float16")]


def many_class_dataset(root: Path, cases: int, size=(512, 512, 24), classes=14, seed=0) -> Path:
    import nibabel as nib

    d = root / "many"
    (d / "imagesTr").mkdir(parents=True, exist_ok=True)
    (d / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in size], indexing="ij")
    for c in range(cases):
        lab = np.zeros(size, np.uint8)
        for k in range(1, classes):
            centre = rng.uniform(0.15, 0.85, 3) * size
            radii = rng.uniform([20, 20, 3], [90, 90, 10])
            lab[((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 < 1] = k
        img = (lab.astype(np.float32) * 40 + rng.normal(0, 20, size)).astype(np.int16)
        aff = np.diag([0.8, 0.8, 2.5, 1.0])
        nib.save(nib.Nifti1Image(img, aff), str(d / "imagesTr" / f"case_{c:03d}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(lab, aff), str(d / "labelsTr" / f"case_{c:03d}.nii.gz"))
    (d / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MR"}, "labels": {("background" if k == 0 else f"c{k}"): k for k in range(classes)},
        "numTraining": cases, "file_ending": ".nii.gz"}))
    return d


def manifest(name: str, classes: list[str], size, storage: str, dtype: str, image: str, target=(1.0, 1.0, "keep")) -> dict:
    return {
        "name": name, "layout": "nnunet",
        "labels": {"classes": [{"name": n, "value": i} for i, n in enumerate(classes)]},
        "geometry": {"orientation": "RAS", "slice_axis": "z", "target_spacing": list(target), "size": list(size), "fit": "pad-or-crop"},
        "intensity": {"mode": "zscore"},
        "maps": {"sdf": True, "rrw": True, "convention": "boundary", "units": "px", "scales": [1],
                 "storage": storage, "dtype": dtype},
        "folds": {"k": 5, "seed": 0}, "shard_size": 64, "dtypes": {"image": image},
    }


def source_bytes(ds: Path) -> int:
    return sum(p.stat().st_size for p in ds.rglob("*.nii.gz"))


def measure(medprep: str, ds: Path, man: dict, work: Path, repeat: int) -> dict:
    mpath = work / f"m-{man['maps']['storage']}-{man['maps']['dtype']}-{man['dtypes']['image']}.json"
    mpath.write_text(json.dumps(man))
    out = work / "out"
    best = None
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        os.sync()
        t0 = time.perf_counter()
        proc = subprocess.run([medprep, "convert", str(ds), "--manifest", str(mpath), "--out", str(out), "--json"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"bench_storage: convert failed: {proc.stderr}")
        best = wall if best is None else min(best, wall)
    summary = json.loads(proc.stdout)
    plan = json.loads(subprocess.run([medprep, "convert", str(ds), "--manifest", str(mpath), "--out", str(work / "plan"),
                                      "--dry-run", "--json"], capture_output=True, text=True).stdout)
    shutil.rmtree(out, ignore_errors=True)
    return {"bytes": summary["bytes"], "samples": summary["samples"], "seconds": best, "plan": plan}


def report(title: str, ds: Path, rows: dict, src: int) -> None:
    dense = rows[("dense", "float32", "float32")]
    n = dense["samples"]
    print(f"\n{title}: {n} slices; source .nii.gz {src / 2**20:.1f} MiB")
    print(f"{'maps.storage, maps.dtype, image':34} {'MiB':>9} {'KiB/slice':>10} {'x source':>9} {'dense/this':>10} {'convert s':>10}")
    for (st, dt, im), r in rows.items():
        name = f"{st}{'' if st == 'online' else ' ' + dt}, image {im}"
        print(f"{name:34} {r['bytes'] / 2**20:9.1f} {r['bytes'] / n / 1024:10.1f} {r['bytes'] / src:9.2f} "
              f"{dense['bytes'] / r['bytes']:10.1f} {r['seconds']:10.2f}")
    on, on16 = rows[("online", "float32", "float32")], rows[("online", "float32", "float16")]
    c16 = rows[("compact", "float16", "float32")]
    print(f"goals: online {on['bytes'] / src:.2f}x source, {on16['bytes'] / src:.2f}x with float16 images (goal <= 1.5x); "
          f"compact float16 {dense['bytes'] / c16['bytes']:.1f}x smaller than dense float32 (goal >= 4x); "
          f"convert online {dense['seconds'] / on['seconds']:.1f}x faster than dense float32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medprep", default=os.environ.get("MEDPREP_BIN", str(REPO / ".build" / "release" / "medprep")))
    ap.add_argument("--cases", type=int, default=20, help="volumes of input a")
    ap.add_argument("--many-cases", type=int, default=3, help="volumes of input b")
    ap.add_argument("--repeat", type=int, default=2, help="convert runs per mode (best wall time)")
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_storage_"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        subprocess.run([a.medprep, "synth", str(work / "a"), "--cases3d", str(a.cases), "--cases2d", "1",
                        "--size3d", "256,256,80", "--force"], check=True, capture_output=True)
        ds_a = work / "a" / "synth3d"
        ds_b = many_class_dataset(work, a.many_cases)
        inputs = [
            ("a. convert benchmark input (256x256x80.., 4 classes, slices 224x224)", ds_a,
             ["background", "outer", "middle", "core"], (224, 224), (1.0, 1.0, "keep")),
            ("b. 14 classes at 512x512 (512x512x24 volumes)", ds_b, ["background"] + [f"c{k}" for k in range(1, 14)],
             (512, 512), ("keep", "keep", "keep")),
        ]
        for title, ds, classes, size, target in inputs:
            src = source_bytes(ds)
            rows = {}
            for st, dt, im in MODES:
                rows[(st, dt, im)] = measure(a.medprep, ds, manifest("bench", classes, size, st, dt, im, target), work, a.repeat)
                plan = rows[(st, dt, im)]["plan"]["projected_bytes"][st]
                got = rows[(st, dt, im)]["bytes"]
                lo, hi = (plan["min"], plan["max"]) if isinstance(plan, dict) else (plan, plan)
                assert lo <= got <= hi, f"preflight projected {plan} for {st} {dt}, convert wrote {got}"
            report(title, ds, rows, src)
            results[title] = {"source_bytes": src, **{f"{st}-{dt}-image-{im}": {k: v for k, v in r.items() if k != "plan"}
                                                     for (st, dt, im), r in rows.items()}}
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2))
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
