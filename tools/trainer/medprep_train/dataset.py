"""Map-style dataset over a medprep shard index (docs/shard-format.md).

Shards are plain safetensors files. Each is memory-mapped lazily, once per process: a
DataLoader worker (forked or spawned) opens its own maps on first use, so nothing large is
pickled and the page cache is shared between workers. A sample is one 2D slice.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import mapslib

# safetensors dtype names -> numpy dtypes (little-endian).
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}

#: Augmentations that map the pixel grid onto itself (applied identically to image, label, maps).
SAFE_AUGMENTATIONS = ("flip", "rot90")
#: Augmentations that touch only the image intensities (maps stay valid).
INTENSITY_AUGMENTATIONS = ("intensity",)
#: Augmentations that resample the grid. With online maps (``maps.storage: online``) the maps are
#: computed from the augmented label, so they are exact; stored maps are resampled with the
#: image (approximately), so they warn.
UNSAFE_AUGMENTATIONS = ("affine",)
#: index.json ``maps.storage`` values this reader knows (an index without the key is dense).
STORAGES = ("online", "dense", "compact")


class MedprepIndexError(ValueError):
    """A problem with an index or a shard, naming the file and the value."""


@dataclass
class ShardInfo:
    file: str
    path: str
    sha256: str
    bytes: int
    sample_count: int
    first_sample: int


@dataclass
class MedprepIndex:
    """The parsed index.json."""

    path: str
    root: str
    raw: dict
    classes: List[dict]
    ordinal: bool
    maps: dict
    shards: List[ShardInfo]
    cases: List[dict]
    sample_count: int
    folds_k: int
    case_of_sample: np.ndarray = field(repr=False)

    @staticmethod
    def load(path: str) -> "MedprepIndex":
        if os.path.isdir(path):
            path = os.path.join(path, "index.json")
        try:
            with open(path, "r", encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise MedprepIndexError(f"index '{path}' does not exist; expected the index.json that 'medprep convert' writes.") from None
        except json.JSONDecodeError as e:
            raise MedprepIndexError(f"index '{path}' is not valid JSON: {e}.") from None
        if raw.get("format") != "medprep-index":
            raise MedprepIndexError(f"index '{path}' has format '{raw.get('format')}'; expected 'medprep-index'.")
        if raw.get("format_version") != 1:
            raise MedprepIndexError(f"index '{path}' has format_version '{raw.get('format_version')}'; this trainer reads version 1.")
        root = os.path.dirname(os.path.abspath(path))
        shards = [ShardInfo(file=s["file"], path=os.path.join(root, s["file"]), sha256=s.get("sha256", ""),
                            bytes=int(s.get("bytes", -1)), sample_count=int(s["sample_count"]),
                            first_sample=int(s["first_sample"])) for s in raw["shards"]]
        n = int(raw["sample_count"])
        case_of_sample = np.full(n, -1, dtype=np.int64)
        for c in raw["cases"]:
            r = c["slice_range"]
            case_of_sample[r["first_sample"]: r["first_sample"] + r["count"]] = c["case_index"]
        if (case_of_sample < 0).any():
            first = int(np.argmax(case_of_sample < 0))
            raise MedprepIndexError(f"index '{path}': sample {first} belongs to no case's slice_range.")
        folds = raw.get("folds") or {}
        k = int(folds.get("k", 1 + max((c.get("fold", 0) for c in raw["cases"]), default=0)))
        return MedprepIndex(path=path, root=root, raw=raw, classes=raw["classes"], ordinal=bool(raw.get("ordinal", False)),
                            maps=raw.get("maps", {}), shards=shards, cases=raw["cases"], sample_count=n, folds_k=k,
                            case_of_sample=case_of_sample)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> List[str]:
        return [c.get("name", str(i)) for i, c in enumerate(self.classes)]

    @property
    def scales(self) -> List[int]:
        return [int(s) for s in self.maps.get("scales", [1])]

    @property
    def storage(self) -> str:
        """``online``, ``dense`` or ``compact`` (docs/shard-format.md, "Map storage")."""
        st = self.maps.get("storage", "dense")
        if st not in STORAGES:
            raise MedprepIndexError(f"index '{self.path}' has maps.storage '{st}'; this trainer reads {', '.join(STORAGES)}.")
        return st

    def case_spacing(self, case_index: int) -> tuple:
        """(row mm, column mm) of a case's shard slices (index.json ``slice_spacing_mm``; 1 mm when absent)."""
        if not hasattr(self, "_spacing"):
            self._spacing = {int(c["case_index"]): tuple(float(v) for v in c.get("slice_spacing_mm", (1.0, 1.0)))
                             for c in self.cases}
        return self._spacing.get(int(case_index), (1.0, 1.0))

    @property
    def records_slice_step(self) -> bool:
        """Whether every case records ``slice_step_mm`` (indexes before it was added do not)."""
        return all("slice_step_mm" in c for c in self.cases)

    def case_geometry(self, case_index: int) -> tuple:
        """(slice step mm, row mm, column mm) of a case's shard slices: the distance between
        consecutive slices (index.json ``slice_step_mm``) and `case_spacing`."""
        if not hasattr(self, "_step"):
            self._step = {int(c["case_index"]): float(c.get("slice_step_mm", 1.0)) for c in self.cases}
        return (self._step.get(int(case_index), 1.0),) + self.case_spacing(case_index)

    def ordinal_ranks(self) -> List[int]:
        """Each class's ordinal rank (index.json `ordinal_rank`, else its index)."""
        return [int(c.get("ordinal_rank", i)) for i, c in enumerate(self.classes)]

    def case_folds(self) -> np.ndarray:
        return np.array([int(c.get("fold", 0)) for c in self.cases], dtype=np.int64)

    def samples_in_folds(self, folds: Iterable[int]) -> np.ndarray:
        folds = set(int(f) for f in folds)
        cf = self.case_folds()
        keep = np.isin(cf[self.case_of_sample], sorted(folds))
        return np.nonzero(keep)[0]

    def fold_split(self, fold: int):
        """(train samples, validation samples): train on the k-1 other folds, validate on `fold`."""
        if not 0 <= fold < self.folds_k:
            raise MedprepIndexError(f"fold '{fold}' is out of range for index '{self.path}' with k = {self.folds_k} folds (0 ..< {self.folds_k}).")
        train = self.samples_in_folds([f for f in range(self.folds_k) if f != fold])
        val = self.samples_in_folds([fold])
        return train, val

    def verify_checksums(self) -> None:
        """Check every shard's size and SHA-256 against the index; raise naming the file."""
        for s in self.shards:
            if not os.path.exists(s.path):
                raise MedprepIndexError(f"shard '{s.path}' listed in '{self.path}' does not exist.")
            size = os.path.getsize(s.path)
            if s.bytes >= 0 and size != s.bytes:
                raise MedprepIndexError(f"shard '{s.path}' is {size} bytes; index '{self.path}' says {s.bytes}.")
            h = hashlib.sha256()
            with open(s.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
            if s.sha256 and h.hexdigest() != s.sha256:
                raise MedprepIndexError(f"shard '{s.path}' has SHA-256 '{h.hexdigest()}'; index '{self.path}' says '{s.sha256}'.")


class ShardFile:
    """One safetensors file, memory-mapped; tensors are numpy views into the map (no copy)."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise MedprepIndexError(f"shard '{path}' is shorter than 8 bytes; not a safetensors file.")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise MedprepIndexError(f"shard '{path}' declares a {n}-byte header; not a safetensors file.")
            header = json.loads(f.read(n).decode("utf-8"))
        self.metadata = header.pop("__metadata__", {}) or {}
        # copy-on-write mapping: pages are shared with the page cache and never written back, and
        # tensors can view them without a copy (a write lands in a private copy of that page).
        self._mm = np.memmap(path, dtype=np.uint8, mode="c")
        base = 8 + n
        self.tensors: Dict[str, np.ndarray] = {}
        for name, e in header.items():
            dt = _DTYPES.get(e["dtype"])
            if dt is None:
                raise MedprepIndexError(f"shard '{path}': tensor '{name}' has dtype '{e['dtype']}' this reader does not know.")
            b, end = e["data_offsets"]
            shape = tuple(int(x) for x in e["shape"])
            arr = np.ndarray(shape=shape, dtype=np.dtype(dt), buffer=self._mm, offset=base + b)
            if arr.nbytes != end - b:
                raise MedprepIndexError(f"shard '{path}': tensor '{name}' spans {end - b} bytes but shape {list(shape)} of {e['dtype']} needs {arr.nbytes}.")
            self.tensors[name] = arr

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def plane_offsets(self) -> np.ndarray:
        """Compact maps: where sample r's planes start in a [P, h, w] map tensor (the number of
        present classes before it in ``class_presence`` order)."""
        if not hasattr(self, "_plane_offsets"):
            counts = self.tensors["class_presence"].astype(np.int64).sum(axis=1)
            self._plane_offsets = np.concatenate([[0], np.cumsum(counts)])
        return self._plane_offsets

    def __contains__(self, name: str) -> bool:
        return name in self.tensors


# ---------------------------------------------------------------------------------------------
# Augmentation


def parse_augment(spec: Optional[str]) -> List[str]:
    """'flip,rot90' -> ['flip', 'rot90']; 'none' or '' -> []."""
    if spec is None:
        return list(SAFE_AUGMENTATIONS)
    items = [s.strip() for s in spec.split(",") if s.strip() and s.strip() != "none"]
    known = SAFE_AUGMENTATIONS + INTENSITY_AUGMENTATIONS + UNSAFE_AUGMENTATIONS
    for a in items:
        if a not in known:
            raise ValueError(f"augmentation '{a}' is unknown; expected some of {', '.join(known)} (comma-separated) or 'none'.")
    return items


class Augmenter:
    """Random flips and 90-degree rotations, identical for image, label and every map.

    Flips and quarter turns map the pixel grid onto itself, so the distance maps of the
    transformed label are the transformed distance maps (they commute). A quarter turn swaps
    H and W, so it is used only on square slices (a half turn, = two flips, otherwise).
    At a coarse scale s the maps were computed from label[::s, ::s]; a flip commutes with that
    sampling only when (H - 1) % s == 0 (resp. W), otherwise the flipped coarse map is off by at
    most one coarse pixel. The coarse *labels* are always re-derived from the augmented label.
    """

    def __init__(self, kinds: Sequence[str], shape_hw=None, scales: Sequence[int] = (1,), seed: int = 0,
                 online_maps: bool = False):
        self.kinds = list(kinds)
        self.seed = seed
        bad = [k for k in self.kinds if k in UNSAFE_AUGMENTATIONS]
        if bad and not online_maps:
            warnings.warn(f"augmentation {', '.join(repr(b) for b in bad)} resamples the grid: the precomputed SDF/RRW maps are "
                          "resampled with it and are no longer exact distance maps of the augmented label; "
                          "only flips and 90-degree rotations commute with the maps.", UserWarning, stacklevel=3)
        if shape_hw is not None and "flip" in self.kinds and not online_maps:
            h, w = shape_hw
            off = coarse_scales_flipping_off_grid(shape_hw, scales)
            if off:
                warnings.warn(f"flips with deep-supervision maps at scale(s) {off} on {h}x{w} slices: the coarse maps are flipped "
                              "as stored and may be off by one coarse pixel (coarse labels are exact).", UserWarning, stacklevel=3)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if not self.kinds:
            return sample
        # A slice one class fills: its maps are those of the full class (measured from the virtual
        # pixel above row 0) and the empty-class constants, which a flip or a turn of the label
        # does not change, so the stored maps stay as they are (moving them would move the
        # virtual pixel: wrong). Online maps are computed after augmentation anyway.
        lab = np.asarray(sample["label"])
        full = lab.size > 0 and lab.min() == lab.max()
        spatial = [k for k in sample if k == "image" or k == "label"
                   or (not full and (k.startswith("sdf") or k.startswith("rrw")))]
        if "flip" in self.kinds:
            if rng.random() < 0.5:
                for k in spatial:
                    sample[k] = np.flip(sample[k], axis=-1)
            if rng.random() < 0.5:
                for k in spatial:
                    sample[k] = np.flip(sample[k], axis=-2)
        if "rot90" in self.kinds:
            h, w = sample["label"].shape[-2:]
            turns = int(rng.integers(0, 4))
            if h != w:
                turns = 2 * (turns % 2)
            if turns:
                for k in spatial:
                    sample[k] = np.rot90(sample[k], k=turns, axes=(-2, -1))
                if turns % 2 and "spacing" in sample:  # rows and columns swap
                    sample["spacing"] = np.asarray(sample["spacing"])[::-1].copy()
        if "intensity" in self.kinds:
            img = np.asarray(sample["image"], dtype=np.float32)
            scale = float(rng.uniform(0.9, 1.1))
            shift = float(rng.uniform(-0.1, 0.1))
            sample["image"] = img * scale + shift
        if "affine" in self.kinds:
            sample = _affine(sample, rng)
        return sample


def _affine(sample: dict, rng: np.random.Generator) -> dict:
    """Small random rotation (+-15 deg) and scaling (0.9-1.1); maps resampled bilinearly (inexact)."""
    import torch.nn.functional as F

    angle = math.radians(float(rng.uniform(-15, 15)))
    scale = float(rng.uniform(0.9, 1.1))
    theta = torch.tensor([[math.cos(angle) / scale, -math.sin(angle) / scale, 0.0],
                          [math.sin(angle) / scale, math.cos(angle) / scale, 0.0]], dtype=torch.float32)[None]
    for k in list(sample):
        if not (k == "image" or k == "label" or k.startswith("sdf") or k.startswith("rrw")):
            continue
        a = torch.from_numpy(np.array(sample[k], dtype=np.float32))
        a = a[None, None] if a.dim() == 2 else a[None]
        grid = F.affine_grid(theta, list(a.shape), align_corners=False)
        mode = "nearest" if k == "label" else "bilinear"
        pad = "zeros" if k in ("image", "label") else "border"
        out = F.grid_sample(a, grid, mode=mode, padding_mode=pad, align_corners=False)[0]
        if k == "label":
            sample[k] = out[0].round().numpy().astype(sample["label"].dtype)
        else:
            sample[k] = out.numpy()
    return sample


# ---------------------------------------------------------------------------------------------
# Maps: compact planes, RRW from SDF


def boundary_offset(h: int, w: int, spacing_rc, scale: int, units: str, convention: str) -> float:
    """The SDF's zero-level offset on a slice's map grid at `scale`: 0 for ``plain``; for
    ``boundary`` 1 in px, in mm the smallest spacing among the grid's axes with more than one
    pixel (docs/distance-maps.md). This is the offset the RRW formula below needs."""
    if convention == "plain":
        return 0.0
    if units != "mm":
        return 1.0
    ch, cw = mapslib.plane_size(h, w, scale)
    sr = float(spacing_rc[0]) * (scale if h > 1 else 1)
    sc = float(spacing_rc[1]) * (scale if w > 1 else 1)
    cands = [v for v, n in ((sc, cw), (sr, ch)) if n > 1]
    return min(cands) if cands else min(sc, sr, 1.0)


def rrw_from_sdf(sdf: np.ndarray, offset: float) -> np.ndarray:
    """RRW of non-empty classes from their float32 SDF planes ([h, w] or [P, h, w]; boundary or
    plain convention), bit for bit what medprep's kernel computes: inside (sdf < offset / 2)
    ``-(offset - sdf) / (offset - min(sdf))`` in float64 (min per plane) rounded to float32, +1
    outside."""
    sdf = np.asarray(sdf, dtype=np.float32)
    v = sdf.astype(np.float64)
    lo = v.min(axis=(-2, -1), keepdims=True)
    inv = 1.0 / (offset - lo)
    return np.where(sdf < np.float32(offset / 2), (-(offset - v) * inv).astype(np.float32), np.float32(1))


# ---------------------------------------------------------------------------------------------
# Dataset


def coarse_scales_flipping_off_grid(shape_hw, scales: Sequence[int]) -> List[int]:
    """Scales s > 1 whose coarse grid label[::s, ::s] a flip does not map onto itself
    ((H - 1) or (W - 1) not a multiple of s): stored coarse maps moved by a flip are off there."""
    h, w = shape_hw
    return [s for s in scales if s > 1 and ((h - 1) % s or (w - 1) % s)]


def _inexact_for_stored(kinds: Sequence[str], shape_hw, scales: Sequence[int]) -> bool:
    """Whether moving stored maps with these augmentations would not give the maps of the
    augmented label: a resampling augmentation, or flips of coarse maps whose grid
    label[::s, ::s] does not flip onto itself ((H - 1) or (W - 1) not a multiple of s)."""
    if any(k in UNSAFE_AUGMENTATIONS for k in kinds):
        return True
    return "flip" in kinds and shape_hw is not None and bool(coarse_scales_flipping_off_grid(shape_hw, scales))


def _maps_library_loads() -> bool:
    """libmedprep_maps is found and loads (else stored maps are moved as before, with a warning)."""
    try:
        mapslib.load()
        return True
    except mapslib.MapsLibraryError:
        return False



def _tensor_f32(v: np.ndarray) -> torch.Tensor:
    """float32 tensor; a view of the (copy-on-write) map when the array is already contiguous
    float32, so the only copy is the DataLoader's collation into the batch."""
    if v.dtype == np.float32 and v.flags.c_contiguous and v.flags.writeable:
        return torch.from_numpy(v)
    return torch.from_numpy(np.array(v, dtype=np.float32))


class MedprepDataset(Dataset):
    """One item per slice: a dict of tensors.

    - ``image`` float32 [C, H, W]; ``label`` int64 [H, W];
    - ``sdf``, ``rrw`` float32 [K, H, W] and ``sdf_s{s}``, ``rrw_s{s}`` for s > 1 (when present and
      requested); ``label_s{s}`` int64, the label sampled as the coarse maps were: label[::s, ::s];
    - ``position`` float64 (p = (i + 1) / N), ``case_index``, ``slice_index``, ``slice_count``,
      ``sample`` (the global sample number).

    Works with any sampler, DistributedSampler included (map-style, ``len`` = selected samples).
    """

    def __init__(self, index, samples: Optional[Sequence[int]] = None, maps: Sequence[str] = ("sdf", "rrw"),
                 scales: Optional[Sequence[int]] = None, augment: Optional[str] = "none", verify: bool = False,
                 seed: int = 0, with_image: bool = True):
        self.index = index if isinstance(index, MedprepIndex) else MedprepIndex.load(index)
        if verify:
            self.index.verify_checksums()
        self.samples = np.arange(self.index.sample_count) if samples is None else np.asarray(samples, dtype=np.int64)
        avail = [m for m in ("sdf", "rrw") if self.index.maps.get(m)]
        self.maps = [m for m in maps if m in avail]
        self.storage = self.index.storage
        self.online = self.storage == "online"
        self.convention = self.index.maps.get("convention", "boundary")
        self.units = self.index.maps.get("units", "px")
        self.rrw_from_sdf = bool(self.index.maps.get("rrw_from_sdf", False))
        if self.online and self.maps:
            mapslib.load()  # fail here, naming what was tried, rather than in a worker
        idx_scales = self.index.scales
        self.scales = [s for s in (idx_scales if scales is None else scales) if s in idx_scales]
        self.with_image = with_image
        self._starts = np.array([s.first_sample for s in self.index.shards], dtype=np.int64)
        self._files: Dict[int, ShardFile] = {}
        self._pid = None
        self.seed = seed
        self.epoch = 0
        shape_hw = None
        if self.index.shards:
            shape_hw = tuple(self._shard(0)["label"].shape[-2:])
            self._files, self._pid = {}, None  # stay lazy: each process maps the shards on first use
        self.shape_hw = shape_hw
        kinds = parse_augment(augment)
        #: maps computed from the label after augmentation: always for online storage; for stored
        #: maps when an augmentation would move them inexactly (affine, or flips of coarse maps
        #: whose grid does not flip onto itself), if libmedprep_maps is there.
        self.recompute = self.online or (bool(self.maps) and _inexact_for_stored(kinds, shape_hw, self.scales)
                                         and _maps_library_loads())
        self.augmenter = Augmenter(kinds, shape_hw=shape_hw, scales=self.scales, seed=seed,
                                   online_maps=self.recompute)

    # pickling for DataLoader workers: drop the maps, each worker reopens its own.
    def __getstate__(self):
        d = dict(self.__dict__)
        d["_files"] = {}
        d["_pid"] = None
        return d

    def set_epoch(self, epoch: int) -> None:
        """Changes the augmentation draws from epoch to epoch (deterministic per sample and epoch)."""
        self.epoch = int(epoch)

    def _shard(self, k: int) -> ShardFile:
        pid = os.getpid()
        if self._pid != pid:
            self._files = {}
            self._pid = pid
        f = self._files.get(k)
        if f is None:
            info = self.index.shards[k]
            if not os.path.exists(info.path):
                raise MedprepIndexError(f"shard '{info.path}' listed in '{self.index.path}' does not exist.")
            f = ShardFile(info.path)
            self._files[k] = f
        return f

    def locate(self, j: int):
        k = int(np.searchsorted(self._starts, j, side="right") - 1)
        return k, j - int(self._starts[k])

    def __len__(self) -> int:
        return int(len(self.samples))

    def raw(self, i: int, maps: bool = True) -> dict:
        """Sample i as numpy arrays (views into the map where possible), before augmentation.

        Maps come from the shard (dense or compact storage) or, for online storage, from the label
        through libmedprep_maps; either way the same floats. ``spacing`` is the slice's
        (row mm, column mm)."""
        j = int(self.samples[i])
        k, r = self.locate(j)
        f = self._shard(k)
        out = {"sample": j}
        if self.with_image:
            out["image"] = f["image"][r]
        out["label"] = f["label"][r]
        for name in ("position", "case_index", "slice_index", "slice_count"):
            if name in f:
                out[name] = f[name][r]
        out["spacing"] = np.asarray(self.index.case_spacing(int(f["case_index"][r])), dtype=np.float64)
        if maps and self.maps:
            if self.online:
                out.update(self.online_maps(out["label"], out["spacing"]))
            else:
                out.update(self._stored_maps(f, r, out["spacing"]))
        return out

    def label_of(self, sample: int) -> np.ndarray:
        """The label [H, W] of a global sample number (a view of the shard)."""
        k, r = self.locate(int(sample))
        return self._shard(k)["label"][r]

    def online_maps(self, label: np.ndarray, spacing, alloc=None) -> dict:
        """The maps of `label` ([H, W], or a batch [N, H, W] with one spacing per plane) at every
        requested scale, computed by medprep's kernel. `alloc(shape)`: the tensors to write them
        into (a batch's, see `__getitems__`); by default new arrays."""
        out = {}
        K = self.index.num_classes
        for s in self.scales:
            shape = label.shape[:-2] + (K,) + mapslib.plane_size(*label.shape[-2:], s)
            bufs = {m: alloc(shape) if alloc and m in self.maps else None for m in ("sdf", "rrw")}
            sdf, rrw = mapslib.slice_maps(label, K, sdf="sdf" in self.maps, rrw="rrw" in self.maps,
                                          convention=self.convention, units=self.units, spacing=spacing, scale=s,
                                          out_sdf=None if bufs["sdf"] is None else bufs["sdf"].numpy(),
                                          out_rrw=None if bufs["rrw"] is None else bufs["rrw"].numpy())
            sdf = sdf if bufs["sdf"] is None else bufs["sdf"]
            rrw = rrw if bufs["rrw"] is None else bufs["rrw"]
            suffix = "" if s == 1 else f"_s{s}"
            if sdf is not None:
                out["sdf" + suffix] = sdf
            if rrw is not None:
                out["rrw" + suffix] = rrw
        return out

    def _stored_maps(self, f: ShardFile, r: int, spacing) -> dict:
        out = {}
        K = self.index.num_classes
        compact = self.storage == "compact"
        present = f["class_presence"][r].astype(bool)
        h, w = f["label"].shape[-2:]
        need_sdf = "sdf" in self.maps or ("rrw" in self.maps and self.rrw_from_sdf)
        for s in self.scales:
            suffix = "" if s == 1 else f"_s{s}"
            planes = {}
            for m in ("sdf", "rrw"):
                name = m + suffix
                if name not in f or not (m in self.maps or (m == "sdf" and need_sdf)):
                    continue
                t = f[name]
                if not compact:
                    planes[m] = t[r]
                    continue
                offs = f.plane_offsets()
                full = np.full((K,) + t.shape[-2:], 0.0 if m == "sdf" else 1.0, dtype=np.float32)
                full[present] = t[offs[r]:offs[r + 1]]
                planes[m] = full
            if "rrw" in self.maps and self.rrw_from_sdf and "sdf" in planes:
                sdf = planes["sdf"]
                rrw = np.ones(sdf.shape, dtype=np.float32)
                off = boundary_offset(h, w, spacing, s, self.units, self.convention)
                # A class present in the slice may be absent from label[::s, ::s]: its coarse
                # maps are then the empty-class constants (SDF 0, RRW +1).
                coarse = np.bincount(np.asarray(f["label"][r])[::s, ::s].ravel(), minlength=K)[:K] > 0
                derive = present & coarse
                if derive.any():
                    rrw[derive] = rrw_from_sdf(sdf[derive], off)
                planes["rrw"] = rrw
            for m in self.maps:
                if m in planes:
                    out[m + suffix] = planes[m]
        return out

    def __getitem__(self, i) -> dict:
        """Sample i (augmented for this dataset's epoch), or ``(epoch, i)`` as `EpochSampler`
        yields: the augmentation draws depend only on (seed, epoch, sample)."""
        s = self._augmented(i)
        if self.recompute and self.maps:
            s.update(self.online_maps(s["label"], s["spacing"]))
        return self._tensors(s)

    def __getitems__(self, indices: Sequence) -> List[dict]:
        """A batch, equal to ``[self[i] for i in indices]``; with maps computed from the label
        (online storage, or an augmentation that stored maps cannot follow) the maps of the whole
        batch come from one library call per scale, written into one [N, K, h, w] tensor per map
        (in shared memory inside a DataLoader worker). Each sample's map is a row of it, which
        `collate` hands on as the batch without the copy that stacking would make. PyTorch's
        DataLoader calls this for every batch."""
        if not (self.recompute and self.maps) or len(indices) < 2:
            return [self[i] for i in indices]
        samples = [self._augmented(i) for i in indices]
        labels = np.stack([s["label"] for s in samples])
        spacing = np.stack([np.asarray(s["spacing"], dtype=np.float64) for s in samples])
        batch = self.online_maps(labels, spacing, alloc=_batch_tensor)
        for n, s in enumerate(samples):
            s.update({k: v[n] for k, v in batch.items()})
        return [self._tensors(s) for s in samples]

    def _augmented(self, i) -> dict:
        """Sample i (or ``(epoch, i)``) as numpy arrays after augmentation; maps only when they are
        not to be recomputed from the augmented label."""
        epoch = self.epoch
        if isinstance(i, tuple):
            epoch, i = i
        # Recomputed maps come from the augmented label: exact for any augmentation (a flip
        # moves the virtual pixel of a full class too, see docs/trainer.md).
        s = self.raw(i, maps=not self.recompute)
        rng = np.random.default_rng([self.seed, int(epoch), int(s["sample"])])
        return self.augmenter(s, rng)

    def _tensors(self, s: dict) -> dict:
        """The sample dict as tensors (maps that are already tensors are kept as they are)."""
        spacing = s.pop("spacing", None)
        out = {}
        for k, v in s.items():
            if torch.is_tensor(v):
                out[k] = v
            elif isinstance(v, np.ndarray) and v.ndim > 0:
                if k == "label":
                    out[k] = torch.from_numpy(np.array(v, dtype=np.int64))
                else:
                    out[k] = _tensor_f32(v)
            else:
                if k == "position":
                    out[k] = torch.tensor(float(v), dtype=torch.float64)
                else:
                    out[k] = torch.tensor(int(v), dtype=torch.int64)
        if spacing is not None:
            out["spacing"] = torch.from_numpy(np.array(spacing, dtype=np.float64))
        for sc in self.scales:
            if sc > 1:
                out[f"label_s{sc}"] = out["label"][::sc, ::sc].contiguous()
        return out


def _batch_tensor(shape) -> torch.Tensor:
    """An uninitialised float32 tensor for a batch's maps: in shared memory inside a DataLoader
    worker (as `default_collate` allocates its output there), so sending it to the main process
    passes a handle instead of copying."""
    numel = int(np.prod(shape))
    if torch.utils.data.get_worker_info() is not None:
        storage = torch.empty(0, dtype=torch.float32)._typed_storage()._new_shared(numel)
        return torch.empty(0, dtype=torch.float32).new(storage).view(*shape)
    return torch.empty(shape, dtype=torch.float32)


def _rows_of_one_tensor(ts: Sequence) -> Optional[torch.Tensor]:
    """The tensor whose rows 0..n-1 are exactly `ts`, in order (as `__getitems__` makes them);
    None for anything else."""
    base = getattr(ts[0], "_base", None) if torch.is_tensor(ts[0]) else None
    if base is None or base.dim() < 1 or base.shape[0] != len(ts) or not base.is_contiguous():
        return None
    for n, t in enumerate(ts):
        if not (torch.is_tensor(t) and t._base is base and t.shape == base.shape[1:] and t.is_contiguous()
                and t.data_ptr() == base[n].data_ptr()):
            return None
    return base


def collate(batch: List[dict]) -> dict:
    """`default_collate` for the dataset's samples, except that a map the dataset already computed
    as one batch tensor (`MedprepDataset.__getitems__`) is that tensor, not a stacked copy."""
    from torch.utils.data import default_collate

    if not (isinstance(batch, list) and batch and isinstance(batch[0], dict)):
        return default_collate(batch)
    out = {}
    for k in batch[0]:
        values = [b[k] for b in batch]
        whole = _rows_of_one_tensor(values)
        out[k] = whole if whole is not None else default_collate(values)
    return out


def make_fold_datasets(index_path: str, fold: int, augment: str = "flip,rot90", maps=("sdf", "rrw"), scales=None,
                       verify: bool = False, seed: int = 0):
    """(train dataset, validation dataset) for a fold; augmentation only on the training set."""
    index = MedprepIndex.load(index_path)
    if verify:
        index.verify_checksums()
    tr, va = index.fold_split(fold)
    train = MedprepDataset(index, tr, maps=maps, scales=scales, augment=augment, seed=seed)
    val = MedprepDataset(index, va, maps=maps, scales=scales, augment="none", seed=seed)
    return train, val
