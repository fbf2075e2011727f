#!/usr/bin/env python3
"""Conversion speed: `medprep convert --jobs 1` vs a straightforward Python pipeline, in one run.

    .venv/bin/python tools/bench/bench_convert.py [--medprep .build/release/medprep]
        [--cases 20] [--size 256,256,80] [--scales 1] [--repeat 3] [--check] [--python-no-sha256]
        [--no-warm] [--workdir DIR] [--keep]

Input: `medprep synth DIR --cases3d N --size3d X,Y,Z` (int16 NIfTI .nii.gz volumes, in-plane
0.75-0.85 mm, 2.5-3.5 mm slices, z = Z..Z+4, half of them stored LPS; 4 classes: nested
shells), converted with a manifest like synth's: RAS, target spacing [1, 1, keep] mm, slices along
z centre-padded to [H, W] (the smallest multiple of 16 holding the largest resampled slice),
zscore-foreground, boundary SDF + RRW for all 4 classes at --scales, 64 slices per shard.

Both sides do the same work, each in its own child process (its wall time and peak RSS are
measured with os.wait4, so the Python side includes its imports); each row is run --repeat times,
taking turns, and keeps its best wall time:
  medprep   medprep convert DS --manifest M --out OUT_M --jobs 1 --json
  python    this script with --python-pipeline: for each case (sorted ids) nibabel load +
            as_closest_canonical, scipy.ndimage.zoom (order 1 image / 0 labels, grid_mode,
            mode='nearest'), z-score over label > 0, slice along z, centre pad/crop, per class
            and scale: scipy distance_transform_edt inside and outside (boundary SDF, RRW),
            CORAL metadata; stacked into shards of 64, written with safetensors.numpy.save_file
            and hashed with hashlib.file_digest (index.json lists every shard's sha256: a pipeline
            doing the same steps has to hash; --python-no-sha256 leaves it out).
medprep also runs its error-level validation (a second medprep row shows --skip-validation) and
fsyncs every file; the Python side does neither. CPU time (user + sys of the child and
its children) is printed next to wall time: the machine may be shared. medprep --jobs 1 still uses
all cores inside a case (slices' maps), so compare CPU time too.
With --check the two outputs are compared tensor by tensor afterwards (image/maps atol 1e-4,
labels and metadata exact), showing that the Python side computed the same tensors.

Goal: medprep at least 10x faster than the Python pipeline at one job (ratio = python / medprep).
Needs only the project's venv (numpy, scipy, nibabel, safetensors).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["background", "outer", "middle", "core"]
SHARD_SIZE = 64


# ------------------------------------------------------------------------------------------------
# the Python pipeline (runs in a child process: --python-pipeline DATASET MANIFEST_JSON OUT)
# ------------------------------------------------------------------------------------------------

def python_pipeline(dataset: Path, manifest: dict, out: Path, sha: bool = False) -> None:
    import hashlib

    import nibabel as nib
    from safetensors.numpy import save_file
    from scipy import ndimage

    out.mkdir(parents=True, exist_ok=True)
    h, w = manifest["geometry"]["size"]
    target = [None if t == "keep" else float(t) for t in manifest["geometry"]["target_spacing"]]
    scales = manifest["maps"]["scales"]
    K = len(manifest["labels"]["classes"])
    ids = sorted(p.name[: -len("_0000.nii.gz")] for p in (dataset / "imagesTr").glob("*_0000.nii.gz"))

    def pad_or_crop(a, fill=0):
        for axis, t in ((-2, h), (-1, w)):
            n = a.shape[axis]
            if n < t:
                pad = [(0, 0)] * a.ndim
                pad[axis] = ((t - n) // 2, t - n - (t - n) // 2)
                a = np.pad(a, pad, constant_values=fill)
            elif n > t:
                sl = [slice(None)] * a.ndim
                sl[axis] = slice((n - t) // 2, (n - t) // 2 + t)
                a = a[tuple(sl)]
        return a

    def maps(lab):
        sdf = np.empty((K,) + lab.shape, np.float32)
        rrw = np.empty((K,) + lab.shape, np.float32)
        for k in range(K):
            m = lab == k
            if not m.any():
                sdf[k], rrw[k] = 0, 1
                continue
            inside = ndimage.distance_transform_edt(m)   # a full class: scipy's virtual pixel before row 0
            outside = ndimage.distance_transform_edt(~m) if not m.all() else 0
            sdf[k] = outside * ~m - (inside - 1) * m
            rrw[k] = np.where(m, -inside / inside[m].max(), 1.0)
        return sdf, rrw

    buf: dict[str, list] = {}
    shard = 0

    def flush():
        nonlocal shard, buf
        if not buf:
            return
        tensors = {k: np.ascontiguousarray(np.stack(v)) for k, v in buf.items()}
        n = len(buf["position"])
        path = out / f"shard-{shard:05d}.safetensors"
        meta = {"format": "medprep-shard", "format_version": "1", "shard_index": str(shard),
                "sample_count": str(n), "medprep_version": "python"}
        save_file(tensors, str(path), metadata=meta)
        if sha:                                 # what an index listing shard checksums needs
            with open(path, "rb") as f:         # streamed back from the page cache, 256 KiB at a time
                hashlib.file_digest(f, "sha256").hexdigest()
        shard += 1
        buf = {}

    for ci, cid in enumerate(ids):
        img_nii = nib.as_closest_canonical(nib.load(str(dataset / "imagesTr" / f"{cid}_0000.nii.gz")))
        lab_nii = nib.as_closest_canonical(nib.load(str(dataset / "labelsTr" / f"{cid}.nii.gz")))
        img = img_nii.get_fdata(dtype=np.float32)
        lab = np.asarray(lab_nii.dataobj).astype(np.uint8)
        zooms = img_nii.header.get_zooms()[:3]
        shape = [n if t is None else max(1, int(np.round(n * z / t))) for n, z, t in zip(img.shape, zooms, target)]
        f = [o / n for o, n in zip(shape, img.shape)]
        img = ndimage.zoom(img, f, order=1, grid_mode=True, mode="nearest")
        lab = ndimage.zoom(lab, f, order=0, grid_mode=True, mode="nearest")
        m = np.eye(4)
        for a, (n, o) in enumerate(zip(img_nii.shape, shape)):
            m[a, a], m[a, 3] = n / o, 0.5 * n / o - 0.5
        affine = img_nii.affine @ m
        fg = lab > 0
        vals = img[fg] if fg.any() else img
        mean, std = vals.mean(dtype=np.float64), vals.std(dtype=np.float64)
        img = ((img - mean) / max(std, 1e-8)).astype(np.float32)
        N = img.shape[2]
        for i in range(N):
            plane = pad_or_crop(img[:, :, i].T)
            lplane = pad_or_crop(lab[:, :, i].T)
            sample = {"image": plane[None], "label": lplane,
                      "case_index": np.int32(ci), "slice_index": np.int32(i), "slice_count": np.int32(N),
                      "position": np.float64((i + 1) / N), "slice_coord_mm": np.float64(affine[2, 2] * i + affine[2, 3]),
                      "pcl_partition": np.uint8(4 * i // N + 1),
                      "class_presence": np.array([(lplane == k).any() for k in range(K)], np.uint8)}
            for s in scales:
                sdf, rrw = maps(lplane[::s, ::s])
                suffix = "" if s == 1 else f"_s{s}"
                sample["sdf" + suffix], sample["rrw" + suffix] = sdf, rrw
            for k, v in sample.items():
                buf.setdefault(k, []).append(v)
            if len(buf["position"]) == SHARD_SIZE:
                flush()
    flush()


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------

TIME = "/usr/bin/time"


def run_child(cmd: list[str]) -> tuple[float, float, float, str]:
    """Runs cmd; returns (wall seconds, CPU seconds (user + sys), peak RSS MiB, stdout).
    Peak RSS comes from /usr/bin/time when installed: ru_maxrss of a child forked straight from
    this Python process starts at this process's own RSS (Linux keeps the pre-exec high-water mark)."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "time.txt"
        full = [TIME, "-f", "%M", "-o", str(stats), *cmd] if os.path.exists(TIME) else cmd
        with open(Path(tmp) / "out", "w+b") as so, open(Path(tmp) / "err", "w+b") as se:
            t0 = time.perf_counter()
            p = subprocess.Popen(full, stdout=so, stderr=se)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            so.seek(0), se.seek(0)
            out, err = so.read().decode(), se.read().decode()
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            sys.exit(f"failed ({rc}): {' '.join(cmd)}\n{err[-3000:]}")
        rss = int(stats.read_text().split()[-1]) / 1024 if stats.exists() else ru.ru_maxrss / 1024
    return wall, ru.ru_utime + ru.ru_stime, rss, out


def warm_memory(mib: int = 1536) -> None:
    """Touches and frees `mib` MiB in a child process (untimed, before every run). On this kind of
    VM the guest hands freed memory back to the host after a couple of seconds, and the next touch
    of it costs a host fault per page: whichever run came first after a long one (the Python
    pipeline, sync) measured 0.3-0.5 s slower, with the time in the kernel. Every row gets the same
    warm-up, so no row pays for its position."""
    subprocess.run([sys.executable, "-c", f"import numpy as np; a = np.ones({mib} << 17); a.sum()"], check=True)


def default_medprep() -> str:
    if os.environ.get("MEDPREP_BIN"):
        return os.environ["MEDPREP_BIN"]
    for c in (ROOT / ".build" / "release" / "medprep", ROOT / ".build" / "debug" / "medprep"):
        if c.exists():
            return str(c)
    return "medprep"


def compare(a: Path, b: Path) -> str:
    from safetensors import safe_open

    files = sorted(p.name for p in a.glob("shard-*.safetensors"))
    assert files == sorted(p.name for p in b.glob("shard-*.safetensors")), "different shard files"
    worst: dict[str, float] = {}
    for name in files:
        with safe_open(str(a / name), framework="np") as fa, safe_open(str(b / name), framework="np") as fb:
            assert set(fa.keys()) == set(fb.keys()), (name, sorted(fa.keys()), sorted(fb.keys()))
            for k in fa.keys():
                x, y = fa.get_tensor(k), fb.get_tensor(k)
                assert x.shape == y.shape and x.dtype == y.dtype, (name, k, x.shape, y.shape, x.dtype, y.dtype)
                d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
                worst[k] = max(worst.get(k, 0.0), d)
    bad = {k: d for k, d in worst.items() if d > (1e-4 if k.startswith(("image", "sdf", "rrw")) else 1e-9)}
    assert not bad, f"outputs differ: {bad}"
    return ", ".join(f"{k} {d:.1e}" for k, d in sorted(worst.items()) if d > 0) or "identical"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--python-pipeline":
        python_pipeline(Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()), Path(sys.argv[4]),
                        sha="--no-sha256" not in sys.argv[5:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medprep", default=default_medprep())
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--size", default="256,256,80", help="volume size x,y,z (z grows by 0-4 per case)")
    ap.add_argument("--scales", default="1", help="map scales, e.g. 1,2")
    ap.add_argument("--check", action="store_true", help="compare the two outputs tensor by tensor")
    ap.add_argument("--python-no-sha256", action="store_true",
                    help="the Python side does not hash its shards (medprep still does, for index.json)")
    ap.add_argument("--no-warm", action="store_true",
                    help="skip the memory warm-up before each run (see warm_memory)")
    ap.add_argument("--workdir", help="where to write (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds (each row leads one round in three); each row keeps its best wall time")
    args = ap.parse_args()

    size = [int(v) for v in args.size.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ds = work / "data" / "synth3d"
        if not (ds / "dataset.json").exists() or json.loads((ds / "dataset.json").read_text())["numTraining"] != args.cases:
            shutil.rmtree(work / "data", ignore_errors=True)
            subprocess.run([args.medprep, "synth", str(work / "data"), "--cases3d", str(args.cases), "--cases2d", "1",
                            "--size3d", ",".join(map(str, size))], check=True, capture_output=True)
        hw = [16 * math.ceil(round(n * 0.85) / 16) for n in size[:2]][::-1]      # [H, W] = [y, x]
        manifest = {
            "name": "bench", "layout": "nnunet",
            "labels": {"ordinal": True, "classes": [{"name": n, "value": i} for i, n in enumerate(CLASSES)]},
            "geometry": {"orientation": "RAS", "slice_axis": "z", "target_spacing": [1.0, 1.0, "keep"],
                         "size": hw, "fit": "pad-or-crop"},
            "intensity": {"mode": "zscore-foreground"},
            # dense: the Python pipeline stores every map too (tools/bench/bench_storage.py
            # compares the storage modes)
            "maps": {"sdf": True, "rrw": True, "convention": "boundary", "units": "px",
                     "scales": [int(s) for s in args.scales.split(",")], "storage": "dense"},
            "folds": {"k": 5, "seed": 0},
            "shard_size": SHARD_SIZE,
        }
        mpath = work / "manifest.json"
        mpath.write_text(json.dumps(manifest, indent=1))
        out_m, out_p = work / "out-medprep", work / "out-python"
        for d in (out_m, out_p, work / "out-medprep-noval"):
            shutil.rmtree(d, ignore_errors=True)
        voxels = sum(int(np.prod(__import__("nibabel").load(str(p)).shape))
                     for p in (ds / "imagesTr").glob("*_0000.nii.gz"))
        print(f"input: {args.cases} volumes {size[0]}x{size[1]}x{size[2]}..{size[2] + 4} int16 .nii.gz "
              f"({voxels / 1e6:.1f} M voxels), 4 classes; slices [{hw[0]}, {hw[1]}], sdf+rrw at scales "
              f"{manifest['maps']['scales']}; medprep {args.medprep}; {os.cpu_count()} cores")

        base = [args.medprep, "convert", str(ds), "--manifest", str(mpath), "--jobs", "1", "--json"]
        commands = {
            "medprep": base + ["--out", str(out_m)],
            "noval": base + ["--out", str(work / "out-medprep-noval"), "--skip-validation"],
            "python": [sys.executable, __file__, "--python-pipeline", str(ds), str(mpath), str(out_p)]
                      + (["--no-sha256"] if args.python_no_sha256 else []),
        }
        outs = {"medprep": out_m, "noval": work / "out-medprep-noval", "python": out_p}
        # Best wall time of --repeat rounds, the three runs taking turns within each round and each
        # round starting one row later: the first process after a quiet spell pays for fresh memory
        # (on a VM, first touch of memory the host took back is slow), which would otherwise always
        # land on the same row. Before each run, untimed: the
        # row's previous output is deleted and os.sync() flushes every dirty page, so no run pays for
        # the one before it (the Python side writes GBs through the page cache without fsync; their
        # writeback used to land on the next row, the first medprep run of the next round); then
        # warm_memory() touches and frees 1.5 GiB, so that no row pays for memory the host took back.
        best = {}
        for r in range(args.repeat):
            names = list(commands)
            for name in names[r % 3:] + names[:r % 3]:
                cmd = commands[name]
                shutil.rmtree(outs[name], ignore_errors=True)
                os.sync()
                if not args.no_warm:
                    warm_memory()
                res = run_child(cmd)
                if name not in best or res[0] < best[name][0]:
                    best[name] = res
        t_m, c_m, rss_m, js = best["medprep"]
        summary = json.loads(js)
        t_v, c_v, rss_v, _ = best["noval"]
        t_p, c_p, rss_p, _ = best["python"]
        py_bytes = sum(p.stat().st_size for p in out_p.glob("shard-*.safetensors"))
        print(f"{'':26} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'slices':>7} {'shards':>7} {'MiB out':>8}")
        print(f"{'medprep --jobs 1':26} {t_m:8.2f} {c_m:8.2f} {rss_m:13.0f} {summary['samples']:7d} {summary['shards']:7d} "
              f"{summary['bytes'] / 2**20:8.0f}")
        print(f"{'  ... --skip-validation':26} {t_v:8.2f} {c_v:8.2f} {rss_v:13.0f}")
        label = "python" + (" (no sha256)" if args.python_no_sha256 else " (nibabel, scipy)")
        print(f"{label:26} {t_p:8.2f} {c_p:8.2f} {rss_p:13.0f} {'':7} {len(list(out_p.glob('shard-*'))):7d} "
              f"{py_bytes / 2**20:8.0f}")
        ratio = t_p / t_m
        print(f"ratio python / medprep: wall {ratio:.1f}x, CPU {c_p / c_m:.1f}x "
              f"(goal >= 10x at one job: {'met' if ratio >= 10 else 'NOT met'})")
        if args.python_no_sha256:
            print("note: medprep also validates the dataset (see the --skip-validation row), hashes every shard "
                  "(sha256 in index.json) and fsyncs every file; the Python side does none of these.")
        else:
            print("note: both sides hash every shard (sha256, as index.json needs); medprep also validates the "
                  "dataset (see the --skip-validation row) and fsyncs every file, the Python side does neither.")
        if args.check:
            print(f"check: same tensors; largest differences: {compare(out_m, out_p)}")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
