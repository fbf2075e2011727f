"""The dataset against the safetensors library and scipy, on shards medprep wrote."""
import json
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from medprep_train.dataset import MedprepDataset, MedprepIndex, MedprepIndexError, make_fold_datasets

scipy_ndimage = pytest.importorskip("scipy.ndimage")


def boundary_sdf(m):
    edt = scipy_ndimage.distance_transform_edt
    return edt(~m) * (~m) - (edt(m) - 1) * m


def rrw_map(m):
    d = scipy_ndimage.distance_transform_edt(m)
    return np.where(m, -d / d.max(), 1.0) if m.any() else np.ones(m.shape)


def test_samples_equal_safetensors_library(shards):
    index = MedprepIndex.load(shards["3d"])
    ds = MedprepDataset(index, scales=[1, 2])
    whole = {}
    for s in index.shards:
        t = load_file(s.path)
        for name, arr in t.items():
            whole.setdefault(name, []).append(arr)
    whole = {k: np.concatenate(v) for k, v in whole.items()}
    assert len(ds) == index.sample_count == len(whole["label"])
    for i in (0, len(ds) // 2, len(ds) - 1):
        item = ds[i]
        np.testing.assert_array_equal(item["image"].numpy(), whole["image"][i].astype(np.float32))
        np.testing.assert_array_equal(item["label"].numpy(), whole["label"][i])
        for m in ("sdf", "rrw", "sdf_s2", "rrw_s2"):
            np.testing.assert_array_equal(item[m].numpy(), whole[m][i])
        assert item["position"].dtype == torch.float64
        assert item["position"].item() == (whole["slice_index"][i] + 1) / whole["slice_count"][i]
        np.testing.assert_array_equal(item["label_s2"].numpy(), whole["label"][i][::2, ::2])


def test_fold_split_partitions_cases(shards):
    index = MedprepIndex.load(shards["3d"])
    folds = index.case_folds()
    seen = set()
    for f in range(index.folds_k):
        tr, va = index.fold_split(f)
        assert not set(tr) & set(va)
        assert set(tr) | set(va) == set(range(index.sample_count))
        assert set(folds[index.case_of_sample[va]]) <= {f}
        assert f not in set(folds[index.case_of_sample[tr]])
        seen |= set(va)
    assert seen == set(range(index.sample_count))
    with pytest.raises(MedprepIndexError, match="fold '7'"):
        index.fold_split(7)


def test_checksum_verification_names_the_bad_shard(shards, tmp_path):
    src = os.path.dirname(shards["2d"])
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    MedprepIndex.load(str(dst / "index.json")).verify_checksums()
    shard = dst / json.load(open(dst / "index.json"))["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(MedprepIndexError, match="SHA-256") as e:
        MedprepDataset(str(dst / "index.json"), verify=True)
    assert str(shard) in str(e.value)


def test_flips_and_rotations_commute_with_the_maps(shards):
    """After augmentation, each stored map equals the map scipy computes from the augmented label,
    classes that fill the slice included (their stored maps must not be flipped)."""
    ds = MedprepDataset(shards["3d"], augment="flip,rot90", seed=3)
    checked = full = 0
    for i in range(0, len(ds), 3):
        for epoch in range(4):
            ds.set_epoch(epoch)
            item = ds[i]
            lab = item["label"].numpy()
            for k in range(item["sdf"].shape[0]):
                m = lab == k
                if not m.any():
                    continue
                # a full class included: scipy measures it from the virtual pixel above row 0
                np.testing.assert_allclose(item["sdf"][k].numpy(), boundary_sdf(m), atol=1e-4)
                np.testing.assert_allclose(item["rrw"][k].numpy(), rrw_map(m), atol=1e-5)
                checked += 1
                full += bool(m.all())
    assert checked > 20 and full > 0
    # the draws change from epoch to epoch and are reproducible
    ds.set_epoch(1)
    a = ds[5]["label"]
    ds.set_epoch(1)
    assert torch.equal(a, ds[5]["label"])


def test_other_augmentations_warn_only_without_the_maps_library(shards, monkeypatch):
    from medprep_train import mapslib
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert MedprepDataset(shards["3d"], augment="affine").recompute  # stored maps recomputed: exact
    # without libmedprep_maps, stored maps are resampled with the image, and that warns
    monkeypatch.setattr(mapslib, "_LIB", None)
    monkeypatch.setattr(mapslib, "candidate_paths", lambda: ["/nonexistent/libmedprep_maps.so"])
    with pytest.warns(UserWarning, match="no longer exact distance maps"):
        ds = MedprepDataset(shards["3d"], augment="affine")  # stored (dense) maps
    assert not ds.recompute
    item = ds[0]
    assert item["label"].shape == item["sdf"].shape[1:]
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MedprepDataset(shards["2d"], augment="flip,rot90,intensity", scales=[1])
        MedprepDataset(shards["3d-online"], augment="affine")  # online maps are exact: no warning
    with pytest.raises(ValueError, match="'elastic'"):
        MedprepDataset(shards["2d"], augment="elastic")


def test_distributed_sampler_and_worker_processes(shards):
    train, val = make_fold_datasets(shards["3d"], 0, augment="flip")
    parts = []
    for rank in range(2):
        s = DistributedSampler(train, num_replicas=2, rank=rank, shuffle=True, seed=0)
        parts.append(list(iter(s)))
    assert set(parts[0]) | set(parts[1]) == set(range(len(train)))
    loader = DataLoader(train, batch_size=4, sampler=DistributedSampler(train, 2, 1, seed=0), num_workers=2)
    n = 0
    for batch in loader:
        assert batch["image"].shape[1:] == (1, 80, 80) and batch["sdf"].shape[1] == 4
        n += batch["image"].shape[0]
    assert n == len(parts[1])
    assert train._files == {}  # the parent process opened nothing: workers map the shards themselves


def test_colour_images_have_three_channels(shards):
    ds = MedprepDataset(shards["2dc"])
    assert ds[0]["image"].shape == (3, 64, 64)


def test_missing_index_names_the_path(tmp_path):
    with pytest.raises(MedprepIndexError, match="does not exist"):
        MedprepIndex.load(str(tmp_path / "nope.json"))
