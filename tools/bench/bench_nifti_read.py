#!/usr/bin/env python3
"""Read speed: medprep vs nibabel on the same NIfTI files, in one run.

    .venv/bin/python tools/bench/bench_nifti_read.py [--medprep .build/release/medprep] [--repeat 5]

Work timed, for each file (the same work on both sides):
  nibabel   nib.load(f).get_fdata(dtype=np.float32)                       in this process
  medprep   read + decompress + conversion to scaled float32, timed inside the binary by
            `medprep read-bench FILE --repeat N --json` -> {"path", "seconds": [...]}
            (process start excluded; the subprocess wall time is shown too)

Files: a 512x512x160 int16 phantom (smooth blobs plus mild noise, so gzip ratio is realistic)
written by nibabel as .nii and .nii.gz in a temp dir, plus the real brain volumes that ship with
nibabel's test data (anatomical.nii: 33x41x25 big-endian int16 T1; example4d.nii.gz: 128x96x24x2
int16 EPI), when the installed nibabel has them.

Goals: medprep >= 2x nibabel on .nii.gz, >= 1x on .nii (ratio = nibabel median / medprep median).
Each side reads every file once before timing (warm page cache); medians over --repeat runs.
Needs only the project's venv (numpy, scipy, nibabel).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def make_phantom(shape, seed=0) -> np.ndarray:
    """int16 head-like phantom: nested ellipsoids, a smooth random field, a little noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    coarse = rng.normal(size=(max(2, nx // 16), max(2, ny // 16), max(2, nz // 8))).astype(np.float32)
    field = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=1, output=np.float32,
                         grid_mode=True, mode="nearest")
    field = field[:nx, :ny, :nz]
    x = (np.arange(nx, dtype=np.float32) - nx / 2) / (0.45 * nx)
    y = (np.arange(ny, dtype=np.float32) - ny / 2) / (0.40 * ny)
    z = (np.arange(nz, dtype=np.float32) - nz / 2) / (0.45 * nz)
    r2 = x[:, None, None] ** 2 + y[None, :, None] ** 2 + z[None, None, :] ** 2
    vol = np.where(r2 < 1.0, 900.0, -1000.0).astype(np.float32)          # head vs air (CT-like)
    vol += np.where(r2 < 0.7, 150.0, 0.0).astype(np.float32)              # "brain"
    vol += np.where(r2 < 1.0, 120.0 * field, 0.0).astype(np.float32)      # smooth texture
    vol += rng.normal(0.0, 6.0, size=shape).astype(np.float32)           # scanner noise
    return np.round(vol).astype(np.int16)


def real_volumes() -> list[Path]:
    data = Path(nib.__file__).parent / "tests" / "data"
    return [p for p in (data / "anatomical.nii", data / "example4d.nii.gz") if p.exists()]


def time_nibabel(path: Path, repeat: int, mmap=True) -> tuple[list[float], float]:
    nib.load(str(path), mmap=mmap).get_fdata(dtype=np.float32)  # warm-up
    out, first = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        arr = nib.load(str(path), mmap=mmap).get_fdata(dtype=np.float32)
        out.append(time.perf_counter() - t0)
        first = float(arr.reshape(-1, order="F")[0])
        del arr
    return out, first


def time_medprep(binary: Path, path: Path, repeat: int):
    """Returns (seconds list, subprocess wall seconds, doc) or raises RuntimeError."""
    subprocess.run([str(binary), "read-bench", str(path), "--repeat", "1", "--json"],
                   capture_output=True, text=True)  # warm-up (page cache, binary)
    t0 = time.perf_counter()
    proc = subprocess.run([str(binary), "read-bench", str(path), "--repeat", str(repeat), "--json"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    try:
        doc = json.loads(proc.stdout)
        if isinstance(doc, list):
            doc = doc[0]
        seconds = [float(s) for s in doc["seconds"]]
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
        raise RuntimeError(f"unexpected output ({e}): {proc.stdout[:300]}")
    if not seconds:
        raise RuntimeError("no timings reported")
    return seconds, wall, doc


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="medprep vs nibabel NIfTI read speed")
    ap.add_argument("--medprep", type=Path, default=ROOT / ".build" / "release" / "medprep",
                    help="medprep binary (default: .build/release/medprep)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats per file and tool (median reported)")
    ap.add_argument("--shape", default="512,512,160", help="phantom shape, e.g. 128,128,40 for a quick run")
    ap.add_argument("--keep", type=Path, help="write the phantom files here instead of a temp dir (kept)")
    ap.add_argument("--no-real", action="store_true", help="skip the volumes from nibabel's test data")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    repeat = max(1, args.repeat)

    have_medprep = args.medprep.exists() and os.access(args.medprep, os.X_OK)
    if not have_medprep:
        print(f"note: medprep binary {args.medprep} not found (build with `swift build -c release`); "
              "timing nibabel only", file=sys.stderr)

    tmp = None
    if args.keep:
        workdir = args.keep
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="medprep-bench-")
        workdir = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        vol = make_phantom(shape)
        img = nib.Nifti1Image(vol, np.diag([0.5, 0.5, 1.0, 1.0]))
        stem = "phantom_" + "x".join(map(str, shape)) + "_int16"
        files = [workdir / f"{stem}.nii.gz", workdir / f"{stem}.nii"]
        for f in files:
            nib.save(img, str(f))
        del vol, img
        print(f"phantom {shape} int16 written in {time.perf_counter() - t0:.1f} s "
              f"(gzip ratio {files[0].stat().st_size / files[1].stat().st_size:.2f})")
        if not args.no_real:
            real = real_volumes()
            if real:
                files += real
                print("real volumes from nibabel test data: " + ", ".join(p.name for p in real))
            else:
                print("no real brain volume found in nibabel's test data; skipped")

        rows = []
        for f in files:
            nb, first = time_nibabel(f, repeat)
            nb_nommap, _ = time_nibabel(f, repeat, mmap=False)
            row = {"file": f.name, "size": f.stat().st_size, "nibabel_s": statistics.median(nb),
                   "nibabel_nommap_s": statistics.median(nb_nommap),
                   "medprep_s": None, "medprep_wall_s": None, "ratio": None, "problem": None}
            if have_medprep:
                try:
                    mp, wall, doc = time_medprep(args.medprep, f, repeat)
                    row["medprep_s"], row["medprep_wall_s"] = statistics.median(mp), wall
                    row["ratio"] = row["nibabel_s"] / row["medprep_s"] if row["medprep_s"] > 0 else float("inf")
                    # read-bench may report the sum of the first voxel over the repeats: a cheap sanity check
                    if "checksum" in doc and abs(float(doc["checksum"]) - first * len(mp)) > 1e-3 * max(1.0, abs(first) * len(mp)):
                        row["problem"] = f"checksum {doc['checksum']} != {first} x {len(mp)} (first voxel differs)"
                except RuntimeError as e:
                    row["problem"] = str(e)
            if f.name.endswith(".nii.gz"):
                row["goal"] = 2.0
            elif f.name.endswith(".nii"):
                row["goal"] = 1.0
            else:
                row["goal"] = None
            rows.append(row)

        hdr = f"{'file':40s} {'size':>10s} {'nibabel s':>10s} {'(no mmap)':>9s} {'medprep s':>10s} {'(wall s)':>9s} {'ratio':>7s} {'goal':>6s}  met"
        print(f"\nmedian of {repeat} repeats; ratio = nibabel / medprep; medprep timed in-process "
              f"(wall = whole subprocess incl. start);\n"
              "nibabel s is nib.load(f) with its default mmap=True (what users get); (no mmap) is mmap=False, "
              "for context only\n")
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            mp = f"{r['medprep_s']:10.4f}" if r["medprep_s"] is not None else f"{'n/a':>10s}"
            wall = f"{r['medprep_wall_s']:9.3f}" if r["medprep_wall_s"] is not None else f"{'':9s}"
            ratio = f"{r['ratio']:6.2f}x" if r["ratio"] is not None else f"{'n/a':>7s}"
            goal = f">={r['goal']:.0f}x" if r["goal"] else ""
            met = "" if r["ratio"] is None or r["goal"] is None else ("yes" if r["ratio"] >= r["goal"] else "NO")
            print(f"{r['file']:40s} {human(r['size']):>10s} {r['nibabel_s']:10.4f} {r['nibabel_nommap_s']:9.4f} {mp} {wall} {ratio} {goal:>6s}  {met}")
            if r["problem"]:
                print(f"    medprep problem: {r['problem']}")
        print(f"\nmachine: {os.cpu_count()} CPUs; nibabel {nib.__version__}, numpy {np.__version__}")
        if args.json:
            args.json.write_text(json.dumps({"repeat": repeat, "shape": shape, "rows": rows}, indent=1) + "\n")
        if not have_medprep:
            return 2
        return 1 if any(r["problem"] for r in rows) else 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
