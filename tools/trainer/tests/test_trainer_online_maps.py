"""Map storage modes and libmedprep_maps, against scipy and against the dense maps convert stored.

- online maps (the C library, called from Python) equal the stored dense maps bit for bit;
- compact shards rebuild the dense maps bit for bit (float32) or to float16 precision;
- the library equals scipy's EDT within 1e-5 relative on 2D slices with empty, full and
  anisotropic cases, in px and mm;
- with online maps, every augmentation, affine and flips of a full class included, gives the maps
  scipy computes from the augmented label.
"""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medprep_train import mapslib
from medprep_train.dataset import MedprepDataset, rrw_from_sdf

ndi = pytest.importorskip("scipy.ndimage")


def scipy_maps(lab, k, spacing=(1.0, 1.0), units="px"):
    """Boundary SDF and RRW of class k from scipy (docs/distance-maps.md), h = smallest spacing."""
    sampling = spacing if units == "mm" else (1.0, 1.0)
    m = lab == k
    if not m.any():
        return np.zeros(m.shape), np.ones(m.shape)
    h = min(s for s, n in zip(sampling, m.shape) if n > 1)
    inside = ndi.distance_transform_edt(m, sampling=sampling)  # all-ones: distance to the virtual pixel above row 0
    outside = ndi.distance_transform_edt(~m, sampling=sampling) if not m.all() else np.zeros(m.shape)
    sdf = outside * (~m) - (inside - h) * m
    rrw = np.where(m, -inside / inside.max(), 1.0)
    return sdf, rrw


def assert_close(got, want, what):
    # 1e-5 relative, with an absolute floor for values near 0 (float32 rounding of h - d).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())), err_msg=what)


def blob_labels(h, w, classes, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    lab = np.zeros((h, w), np.uint8)
    for k in range(1, classes):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, max(h, w) / 3)
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
    return lab


@pytest.mark.parametrize("units,spacing", [("px", (1.0, 1.0)), ("mm", (0.7, 1.9)), ("mm", (2.5, 0.5))])
def test_library_equals_scipy_on_2d_slices(units, spacing):
    K = 4
    planes = [blob_labels(37, 29, K, s) for s in range(4)]
    planes.append(np.full((37, 29), 2, np.uint8))  # class 2 fills the slice; 0, 1, 3 are empty
    planes.append(np.zeros((37, 29), np.uint8))    # background only
    stack = np.stack(planes)
    sdf, rrw = mapslib.slice_maps(stack, K, units=units, spacing=spacing, threads=2)
    assert sdf.shape == rrw.shape == (len(planes), K, 37, 29) and sdf.dtype == np.float32
    for n, lab in enumerate(planes):
        for k in range(K):
            want_s, want_r = scipy_maps(lab, k, spacing, units)
            assert_close(sdf[n, k], want_s, f"sdf plane {n} class {k} {units}")
            assert_close(rrw[n, k], want_r, f"rrw plane {n} class {k} {units}")
    one, _ = mapslib.slice_maps(stack, K, rrw=False, units=units, spacing=spacing, threads=1)
    assert one.tobytes() == sdf.tobytes()  # the thread count changes no byte


def test_library_coarse_scale_is_the_maps_of_the_strided_label():
    lab = blob_labels(30, 22, 3, 9)
    sdf, rrw = mapslib.slice_maps(lab, 3, scale=4)
    coarse = lab[::4, ::4]
    assert sdf.shape == (3,) + coarse.shape
    for k in range(3):
        want_s, want_r = scipy_maps(coarse, k)
        assert_close(sdf[k], want_s, f"class {k}")
        assert_close(rrw[k], want_r, f"class {k}")


def test_library_refuses_bad_arguments_with_a_message():
    lab = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="class indices 0 ..< 2"):
        mapslib.slice_maps(lab + 2, 2)
    with pytest.raises(ValueError, match="units 'cm'"):
        mapslib.slice_maps(lab, 2, units="cm")
    with pytest.raises(mapslib.MapsLibraryError, match="voxel spacing '-1.0'"):
        mapslib.slice_maps(lab, 2, units="mm", spacing=(-1.0, 1.0))
    with pytest.raises(mapslib.MapsLibraryError, match="class count '0'"):
        mapslib.slice_maps(np.zeros((0, 4, 4), np.uint8), 0)
    with pytest.raises(ValueError, match="scale '0'"):
        mapslib.slice_maps(lab, 2, scale=0)


def test_missing_library_names_where_it_looked(monkeypatch):
    monkeypatch.setattr(mapslib, "_LIB", None)
    monkeypatch.setattr(mapslib, "candidate_paths", lambda: ["/nonexistent/libmedprep_maps.so"])
    with pytest.raises(mapslib.MapsLibraryError, match="/nonexistent/libmedprep_maps.so"):
        mapslib.load()


def test_storage_modes_hold_the_same_maps(shards):
    """online (computed by the library) and compact (rebuilt) equal dense, bit for bit."""
    dense = MedprepDataset(shards["3d"], scales=[1, 2])
    online = MedprepDataset(shards["3d-online"], scales=[1, 2])
    compact = MedprepDataset(shards["3d-compact"], scales=[1, 2])
    half = MedprepDataset(shards["3d-compact16"], scales=[1, 2])
    assert (dense.storage, online.storage, compact.storage) == ("dense", "online", "compact")
    assert compact.rrw_from_sdf and not dense.rrw_from_sdf
    assert len(dense) == len(online) == len(compact) == len(half)
    for i in range(len(dense)):
        a, b, c, d = dense.raw(i), online.raw(i), compact.raw(i), half.raw(i)
        np.testing.assert_array_equal(a["label"], b["label"])
        for m in ("sdf", "rrw", "sdf_s2", "rrw_s2"):
            want = np.asarray(a[m], dtype=np.float32)
            assert np.asarray(b[m]).tobytes() == want.tobytes(), f"online {m} sample {i}"
            assert np.asarray(c[m]).tobytes() == want.tobytes(), f"compact {m} sample {i}"
            # float16: SDF to half precision; RRW from the half SDF (about 1e-3).
            tol = 2 ** -10 * np.maximum(np.abs(want), 1) if m.startswith("sdf") else 2e-3
            assert np.all(np.abs(np.asarray(d[m]) - want) <= tol), f"compact16 {m} sample {i}"


def test_rrw_from_sdf_formula_matches_the_kernel():
    lab = blob_labels(25, 31, 3, 4)
    for conv, off in (("boundary", 1.0), ("plain", 0.0)):
        sdf, rrw = mapslib.slice_maps(lab, 3, convention=conv)
        for k in range(3):
            assert rrw_from_sdf(sdf[k], off).tobytes() == rrw[k].tobytes(), f"{conv} class {k}"


def test_compact_shards_are_smaller_and_open_with_safe_open(shards):
    from safetensors import safe_open
    import os
    sizes = {}
    for key in ("3d", "3d-online", "3d-compact", "3d-compact16"):
        idx = MedprepDataset(shards[key]).index
        sizes[key] = sum(os.path.getsize(s.path) for s in idx.shards)
        for s in idx.shards:
            with safe_open(s.path, framework="np") as f:
                names = set(f.keys())
                present = f.get_tensor("class_presence")
                if key == "3d-online":
                    assert not any(n.startswith(("sdf", "rrw")) for n in names)
                elif key.startswith("3d-compact"):
                    assert "rrw" not in names  # derived from the SDF (boundary convention)
                    assert f.get_slice("sdf").get_shape()[0] == int(present.sum())
    assert sizes["3d-online"] < sizes["3d-compact16"] < sizes["3d-compact"] < sizes["3d"]


@pytest.mark.parametrize("key", ["3d-online", "3d", "3d-compact"])
def test_maps_are_exact_after_affine_and_flips(shards, key):
    """The maps of each augmented sample equal scipy's maps of its augmented label, full classes
    included: online maps are computed after augmentation, and so are stored (dense, compact)
    maps when an augmentation would move them inexactly (affine; flips of the 80x80 slices' coarse
    maps, 79 not being a multiple of 2)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact maps: no warning about resampled maps
        ds = MedprepDataset(shards[key], augment="flip,rot90,affine", seed=5, scales=[1, 2])
    assert ds.recompute
    checked_full = checked = 0
    for i in range(0, len(ds), 2):
        ds.set_epoch(i % 3)
        item = ds[i]
        lab = item["label"].numpy()
        spacing = tuple(item["spacing"].numpy())
        for k in range(item["sdf"].shape[0]):
            want_s, want_r = scipy_maps(lab, k, spacing, "px")
            assert_close(item["sdf"][k].numpy(), want_s, f"sample {i} class {k}")
            assert_close(item["rrw"][k].numpy(), want_r, f"sample {i} class {k}")
            checked += 1
            checked_full += bool((lab == k).all())
        lab2 = item["label_s2"].numpy()
        for k in range(item["sdf_s2"].shape[0]):
            assert_close(item["sdf_s2"][k].numpy(), scipy_maps(lab2, k)[0], f"sample {i} class {k} scale 2")
    assert checked > 50 and checked_full > 0


def test_online_maps_in_worker_processes(shards):
    ds = MedprepDataset(shards["3d-online"], augment="flip,affine", seed=1)
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    batch = next(iter(loader))
    assert batch["sdf"].shape == (8, 4, 80, 80) and batch["rrw"].dtype == torch.float32
    for j in range(8):
        lab = batch["label"][j].numpy()
        assert_close(batch["sdf"][j, 1].numpy(), scipy_maps(lab, 1)[0], f"batch item {j}")


@pytest.mark.parametrize("key,augment", [("3d-online", "none"), ("3d-online", "flip,rot90,affine"),
                                         ("3d", "flip,affine"), ("3d-compact", "none")])
def test_batched_fetch_equals_one_by_one(shards, key, augment):
    """`__getitems__` (what DataLoader calls) gives exactly the samples `__getitem__` gives, with
    `EpochSampler`'s (epoch, i) indices too; where maps are recomputed they are rows of one batch
    tensor, which `collate` hands on uncopied, and every other key collates as `default_collate`."""
    from torch.utils.data import default_collate
    from medprep_train.dataset import collate

    ds = MedprepDataset(shards[key], augment=augment, seed=3, scales=[1, 2])
    idx = [(2, i) for i in (5, 0, 17, 9, 3)]
    one = [ds[i] for i in idx]
    many = ds.__getitems__(idx)
    assert [sorted(s) for s in many] == [sorted(s) for s in one]
    for a, b in zip(one, many):
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    batch, want = collate(many), default_collate(one)
    assert sorted(batch) == sorted(want)
    for k in want:
        assert torch.equal(batch[k], want[k]), k
    shared = batch["sdf"].data_ptr() == many[0]["sdf"].data_ptr()
    assert shared == ds.recompute  # batched maps are not copied again; stored ones are stacked
    if ds.recompute:
        assert batch["rrw_s2"].data_ptr() == many[0]["rrw_s2"].data_ptr()
        # Rows of one tensor in another order are not that tensor: they are stacked.
        swapped = [many[1], many[0]] + many[2:]
        assert torch.equal(collate(swapped)["sdf"], default_collate(swapped)["sdf"])


def test_batched_fetch_in_worker_processes_equals_the_main_process(shards):
    """With workers the batch maps are written in shared memory; the batches equal those of the
    main process (collate) and those of stacking one sample at a time (default collation)."""
    from medprep_train.dataset import collate

    ds = MedprepDataset(shards["3d-online"], augment="flip,affine", seed=2, scales=[1, 2])
    main = list(DataLoader(ds, batch_size=6, num_workers=0, collate_fn=collate))
    workers = list(DataLoader(ds, batch_size=6, num_workers=2, collate_fn=collate))
    plain = list(DataLoader(ds, batch_size=6, num_workers=0, batch_sampler=None))
    assert len(main) == len(workers) == len(plain) > 1
    for a, b, c in zip(main, workers, plain):
        for k in a:
            assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), k


def test_library_writes_into_given_arrays_or_refuses_them():
    lab = np.stack([blob_labels(21, 17, 3, s) for s in range(3)])
    want_s, want_r = mapslib.slice_maps(lab, 3, scale=2)
    out_s = np.full(want_s.shape, np.nan, np.float32)
    out_r = np.full(want_r.shape, np.nan, np.float32)
    got_s, got_r = mapslib.slice_maps(lab, 3, scale=2, out_sdf=out_s, out_rrw=out_r)
    assert np.shares_memory(got_s, out_s) and np.array_equal(out_s, want_s) and np.array_equal(out_r, want_r)
    one, _ = mapslib.slice_maps(lab[1], 3, scale=2, rrw=False, out_sdf=out_s[1])
    assert np.shares_memory(one, out_s) and np.array_equal(one, want_s[1])
    for bad in (np.empty(want_s.shape, np.float64), np.empty(want_s.shape[1:], np.float32),
                np.empty(want_s.shape, np.float32)[:, :, ::-1]):
        with pytest.raises(ValueError, match="out_sdf must be a writeable C-contiguous float32 array"):
            mapslib.slice_maps(lab, 3, scale=2, out_sdf=bad)
