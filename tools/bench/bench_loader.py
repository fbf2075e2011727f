#!/usr/bin/env python3
"""Data-loading throughput per map storage mode, against reading the source NIfTI and computing
the maps with scipy on the fly. One run, same slices, same order, one worker each; prints samples
per second per worker (to size --workers) and the ratios.

    .venv/bin/python tools/bench/bench_loader.py --medprep .build/release/medprep

What it does:
1. `medprep synth` writes 3D NIfTI volumes (256 x 256 x 16..20, int16, gzip), the manifest is set
   to 256 x 256 slices at the stored spacing (no resampling), and `medprep convert` writes the
   shards three times: maps stored dense (float32), compact (float32) and online (none stored),
   SDF and RRW for 4 classes at scales 1 and 2.
2. medprep loaders: medprep_train.MedprepDataset -> image [1,256,256], label, sdf/rrw [4,256,256],
   sdf_s2/rrw_s2 [4,128,128]: dense and compact read from the memory-mapped shards; online
   computes the maps per sample with libmedprep_maps, without augmentation, after flip+rot90,
   and after affine (which only online maps get exactly right).
3. Baseline loader, per sample: nibabel loads the case's image and mask (.nii.gz), reorients to
   RAS (as_closest_canonical), takes the slice, z-scores it over the volume's non-zero voxels,
   pads/crops to 256 x 256, and computes the same maps with scipy.ndimage.distance_transform_edt
   (boundary SDF = EDT(~M)(~M) - (EDT(M) - 1) M; RRW = +1 outside, -d/max d inside) at scales 1
   and 2. A second baseline keeps every decoded volume in memory (maps only, its best case).
All go through a torch DataLoader (batch 8, num_workers 0 = one worker, the main process) in
the same shuffled order; throughput is samples / wall second after one warm-up pass (shards read
from the page cache). Goals: online >= 0.5x dense stored maps, >= 30x the NIfTI+scipy baseline.
Two more rows read dense and online shards from disk (page cache dropped before every pass with
posix_fadvise), as a dataset larger than RAM is read; one more times online maps with PyTorch's
default collation (one more copy of the maps) against the trainer's `collate`.
Not a timed test: a script that reports one run.
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

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "trainer"))


def maps_for(label: np.ndarray, k: int, scales, edt) -> dict:
    out = {}
    for s in scales:
        lab = label[::s, ::s]
        sdf = np.empty((k,) + lab.shape, np.float32)
        rrw = np.empty((k,) + lab.shape, np.float32)
        for c in range(k):
            m = lab == c
            if not m.any():  # empty class: no distance to compute (values do not matter for timing)
                sdf[c] = 0
                rrw[c] = 1
                continue
            d_in = edt(m)
            d_out = edt(~m)
            sdf[c] = d_out * (~m) - (d_in - 1) * m
            rrw[c] = np.where(m, -d_in / d_in.max(), 1.0)
        suffix = "" if s == 1 else f"_s{s}"
        out["sdf" + suffix] = sdf
        out["rrw" + suffix] = rrw
    return out


class NiftiSliceDataset:
    """The baseline: source NIfTI -> slice -> maps, on the fly."""

    def __init__(self, cases, size=256, k=4, scales=(1, 2), cache=False):
        import nibabel as nib
        from scipy.ndimage import distance_transform_edt

        self.nib, self.edt = nib, distance_transform_edt
        self.cases, self.size, self.k, self.scales = cases, size, k, scales
        self.items = []
        self.cache = {} if cache else None
        for ci, (img, msk) in enumerate(cases):
            nz = nib.as_closest_canonical(nib.load(img)).shape[2]
            self.items += [(ci, z) for z in range(nz)]
        if cache:
            for ci in range(len(cases)):
                self.cache[ci] = self._volume(ci)

    def _volume(self, ci):
        img, msk = self.cases[ci]
        im = self.nib.as_closest_canonical(self.nib.load(img))
        lb = self.nib.as_closest_canonical(self.nib.load(msk))
        vol = np.asarray(im.dataobj, dtype=np.float32)
        lab = np.asarray(lb.dataobj).astype(np.int64)
        nzv = vol[vol != 0]
        mu, sd = (float(nzv.mean()), float(nzv.std()) or 1.0) if nzv.size else (0.0, 1.0)
        return (vol - mu) / sd, lab

    def _fit(self, a):
        s = self.size
        out = np.zeros((s, s), a.dtype)
        h, w = min(s, a.shape[0]), min(s, a.shape[1])
        oy, ox = (s - h) // 2, (s - w) // 2
        iy, ix = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
        out[oy:oy + h, ox:ox + w] = a[iy:iy + h, ix:ix + w]
        return out

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import torch

        ci, z = self.items[i]
        vol, lab = self.cache[ci] if self.cache is not None else self._volume(ci)
        # rows = y, columns = x (medprep's layout for axial slices)
        image = self._fit(vol[:, :, z].T)
        label = self._fit(lab[:, :, z].T)
        out = {"image": torch.from_numpy(image[None].copy()), "label": torch.from_numpy(label.astype(np.int64))}
        for name, arr in maps_for(label, self.k, self.scales, self.edt).items():
            out[name] = torch.from_numpy(arr)
        return out


def drop_page_cache(ds) -> None:
    """Closes the dataset's shard maps and asks the kernel to drop the shards' cached pages
    (posix_fadvise DONTNEED, no root needed), so the next pass reads them from disk: the case of
    a dataset larger than RAM."""
    import gc
    import glob

    ds._files = {}
    gc.collect()  # unmap: mapped pages are not dropped
    for path in glob.glob(os.path.join(os.path.dirname(ds.index.path), "*.safetensors")):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def throughput(ds, order, batch=8, min_seconds=3.0, max_samples=None, default_collate=False, cold=False):
    """Samples per second through a DataLoader with one worker (the main process). medprep's
    datasets use the trainer's `collate` (batched online maps are not copied again) unless
    `default_collate`; `cold`: the shards' page cache is dropped before every pass (and the
    dropping is not timed)."""
    from torch.utils.data import DataLoader, Subset
    from medprep_train.dataset import MedprepDataset, collate

    sub = Subset(ds, list(order))
    dl = DataLoader(sub, batch_size=batch, shuffle=False, num_workers=0,
                    collate_fn=collate if isinstance(ds, MedprepDataset) and not default_collate else None)
    for i, _ in enumerate(dl):  # warm-up: page cache, lazy maps
        if i >= 1:
            break
    n, el = 0, 0.0
    while True:
        if cold:
            drop_page_cache(ds)
        t0 = time.perf_counter()
        for b in dl:
            n += b["image"].shape[0]
            if max_samples and n >= max_samples:
                break
        el += time.perf_counter() - t0
        if el >= min_seconds or (max_samples and n >= max_samples):
            return n / el, n, el


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--medprep", default=os.environ.get("MEDPREP_BIN", os.path.join(REPO, ".build", "release", "medprep")))
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per loader")
    ap.add_argument("--baseline-samples", type=int, default=48, help="samples timed for the slow baseline")
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    if not os.path.exists(a.medprep):
        sys.exit(f"bench_loader: medprep binary '{a.medprep}' not found; build it (swift build -c release) or pass --medprep.")
    import torch

    torch.set_num_threads(1)  # one worker, one thread: per-worker throughput
    work = a.work or tempfile.mkdtemp(prefix="bench-loader-")
    try:
        src = os.path.join(work, "synth")
        subprocess.run([a.medprep, "synth", src, "--cases3d", str(a.cases), "--cases2d", "1", "--size3d",
                        f"{a.size},{a.size},16", "--force"], check=True, capture_output=True)
        man = os.path.join(src, "synth3d", "manifest.yaml")
        text = open(man).read()
        text = text.replace("target_spacing: [1.0, 1.0, keep]", "target_spacing: [keep, keep, keep]")
        text = text.replace("size: [80, 80]", f"size: [{a.size}, {a.size}]")
        open(man, "w").write(text)
        outs, convert_s = {}, {}
        for storage in ("dense", "compact", "online"):
            open(man, "w").write(text.replace("scales: [1, 2]}", f"scales: [1, 2], storage: {storage}}}"))
            outs[storage] = os.path.join(work, f"shards-{storage}")
            t0 = time.perf_counter()
            subprocess.run([a.medprep, "convert", os.path.join(src, "synth3d"), "--out", outs[storage], "--force"], check=True,
                           capture_output=True)
            convert_s[storage] = round(time.perf_counter() - t0, 3)

        from medprep_train.dataset import MedprepDataset

        def loader(storage, augment="none"):
            return MedprepDataset(os.path.join(outs[storage], "index.json"), maps=("sdf", "rrw"), scales=[1, 2], augment=augment)

        mp = loader("dense")
        item = mp[0]
        shapes = {k: list(v.shape) for k, v in item.items() if hasattr(v, "shape") and v.dim() > 0}
        d = os.path.join(src, "synth3d")
        cases = [(os.path.join(d, "imagesTr", f), os.path.join(d, "labelsTr", f.replace("_0000", "")))
                 for f in sorted(os.listdir(os.path.join(d, "imagesTr")))]
        base = NiftiSliceDataset(cases, a.size)
        cached = NiftiSliceDataset(cases, a.size, cache=True)
        bitem = base[0]
        assert {k: list(v.shape) for k, v in bitem.items()} == {k: v for k, v in shapes.items() if k in bitem}, \
            (shapes, {k: list(v.shape) for k, v in bitem.items()})
        n = min(len(mp), len(base))
        order = np.random.default_rng(0).permutation(n)

        rows = [("dense stored maps (memory-mapped)", mp), ("compact stored maps", loader("compact")),
                ("online maps, no augmentation", loader("online")), ("online maps, flip+rot90", loader("online", "flip,rot90")),
                ("online maps, affine", loader("online", "affine"))]
        rates = {}
        for name, ds in rows:
            rates[name] = throughput(ds, order, min_seconds=a.seconds)
        # What the batched maps save: the same online loader with PyTorch's default collation.
        rates["online maps, default collation"] = throughput(rows[2][1], order, min_seconds=a.seconds,
                                                             default_collate=True)
        # A dataset larger than RAM: shards read from disk on every pass.
        rates["dense stored maps, from disk"] = throughput(rows[0][1], order, min_seconds=a.seconds, cold=True)
        rates["online maps, from disk"] = throughput(rows[2][1], order, min_seconds=a.seconds, cold=True)
        r_b, n_b, t_b = throughput(base, order, min_seconds=0.1, max_samples=a.baseline_samples)
        r_c, n_c, t_c = throughput(cached, order, min_seconds=0.1, max_samples=a.baseline_samples)
        bytes_per = sum(v.numel() * v.element_size() for k, v in item.items() if hasattr(v, "numel"))
        r_dense, r_online = rates[rows[0][0]][0], rates[rows[2][0]][0]
        res = {
            "slices": n, "slice_size": [a.size, a.size], "classes": 4, "scales": [1, 2],
            "tensors_per_sample": shapes, "bytes_per_sample": bytes_per, "convert_seconds": convert_s,
            "samples_per_s": {name: round(r[0], 1) for name, r in rates.items()},
            "nifti_scipy_samples_per_s": round(r_b, 2), "nifti_scipy_timed": [n_b, round(t_b, 3)],
            "cached_volumes_scipy_samples_per_s": round(r_c, 2), "cached_timed": [n_c, round(t_c, 3)],
            "online_vs_dense": round(r_online / r_dense, 2),
            "online_collate_vs_default": round(r_online / rates["online maps, default collation"][0], 2),
            "online_vs_dense_from_disk": round(rates["online maps, from disk"][0] / rates["dense stored maps, from disk"][0], 2), "online_vs_nifti_scipy": round(r_online / r_b, 1),
            "dense_vs_nifti_scipy": round(r_dense / r_b, 1),
        }
        print(f"slices {a.size}x{a.size} with SDF+RRW for 4 classes at scales 1 and 2 ({bytes_per / 2**20:.2f} MiB/sample), "
              f"{n} slices, one worker each, DataLoader batch 8, shuffled:")
        for name, (r, k, t) in rates.items():
            print(f"  {name:38} {r:10.1f} samples/s  ({k} in {t:.2f} s)")
        print(f"  {'NIfTI + scipy maps on the fly':38} {r_b:10.2f} samples/s  ({n_b} in {t_b:.2f} s)")
        print(f"  {'decoded volumes in RAM + scipy maps':38} {r_c:10.2f} samples/s  ({n_c} in {t_c:.2f} s)")
        print(f"  ratios: online/dense {r_online / r_dense:.2f}x (goal >= 0.5x), online/NIfTI+scipy {r_online / r_b:.1f}x "
              f"(goal >= 30x), dense/NIfTI+scipy {r_dense / r_b:.1f}x, online/cached volumes {r_online / r_c:.1f}x, "
              f"online collate/default collation {res['online_collate_vs_default']:.2f}x, "
              f"from disk online/dense {res['online_vs_dense_from_disk']:.2f}x")
        print(f"  convert seconds: {convert_s}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
        return res
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
