"""Validation metrics: Dice and 95% Hausdorff distance per class, and for ordinal datasets the
contact-surface error and the share of pixels with a unimodal predicted distribution.

Definitions (and sources) are in docs/trainer.md; tests/test_trainer_metrics.py checks each against a
brute-force computation.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

try:  # optional: a fast exact distance transform for HD95
    from scipy import ndimage as _ndi
except Exception:  # pragma: no cover - exercised when scipy is absent
    _ndi = None


# ---------------------------------------------------------------------------------------------
# Dice


def dice_counts(pred: np.ndarray, gt: np.ndarray, k: int) -> np.ndarray:
    """[K, 3] counts (TP, FP, FN) per class for integer label arrays of any shape."""
    pred = pred.reshape(-1).astype(np.int64)
    gt = gt.reshape(-1).astype(np.int64)
    conf = np.bincount(gt * k + pred, minlength=k * k).reshape(k, k)  # rows gt, cols pred
    tp = np.diag(conf)
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    return np.stack([tp, fp, fn], 1)


def dice_from_counts(c: np.ndarray) -> np.ndarray:
    """2TP / (2TP + FP + FN) per class; NaN when the class is absent from both."""
    tp, fp, fn = c[:, 0].astype(float), c[:, 1].astype(float), c[:, 2].astype(float)
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)


# ---------------------------------------------------------------------------------------------
# Hausdorff distance


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with at least one face neighbour (4 in 2D, 6 in 3D) outside it; voxels
    on the array's edge count as having an outside neighbour."""
    m = mask.astype(bool)
    inner = m.copy()
    for ax in range(m.ndim):
        sl_lo = [slice(None)] * m.ndim
        sl_hi = [slice(None)] * m.ndim
        sl_lo[ax] = slice(1, None)
        sl_hi[ax] = slice(None, -1)
        shifted = np.zeros_like(m)
        shifted[tuple(sl_hi)] = m[tuple(sl_lo)]  # neighbour at +1
        inner &= shifted
        shifted = np.zeros_like(m)
        shifted[tuple(sl_lo)] = m[tuple(sl_hi)]  # neighbour at -1
        inner &= shifted
    return m & ~inner


def _directed_distances(a_pts: np.ndarray, b_surf: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance from each point of a_pts (N, ndim, voxel indices) to the nearest voxel of b_surf."""
    if _ndi is not None:
        dt = _ndi.distance_transform_edt(~b_surf, sampling=spacing)
        return dt[tuple(a_pts.T)]
    b_pts = np.argwhere(b_surf).astype(np.float64) * np.asarray(spacing)
    a = torch.from_numpy(a_pts.astype(np.float64) * np.asarray(spacing))
    b = torch.from_numpy(b_pts)
    out = []
    for i in range(0, len(a), 4096):
        out.append(torch.cdist(a[i:i + 4096], b).min(1).values)
    return torch.cat(out).numpy() if out else np.zeros(0)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Optional[Sequence[float]] = None) -> float:
    """95th percentile of the symmetric surface distances: the distances from every surface voxel
    of each mask to the nearest surface voxel of the other, pooled (numpy's linear percentile).
    NaN when either mask is empty."""
    pred = pred.astype(bool)
    gt = gt.astype(bool)
    if not pred.any() or not gt.any():
        return float("nan")
    spacing = [1.0] * pred.ndim if spacing is None else list(spacing)
    sp, sg = surface(pred), surface(gt)
    d1 = _directed_distances(np.argwhere(sp), sg, spacing)
    d2 = _directed_distances(np.argwhere(sg), sp, spacing)
    return float(np.percentile(np.concatenate([d1, d2]), 95))


# ---------------------------------------------------------------------------------------------
# Ordinal metrics


def contact_surface_counts(pred: np.ndarray, ranks: Optional[Sequence[int]] = None) -> np.ndarray:
    """For a predicted label map [..., H, W]: [[bad_h, diff_h], [bad_v, diff_v]] where diff counts
    4-neighbour pairs with different classes and bad those whose ranks differ by more than one."""
    p = np.asarray(pred).astype(np.int64)
    if ranks is not None:
        p = np.asarray(ranks, dtype=np.int64)[p]
    out = np.zeros((2, 2), dtype=np.int64)
    for d, (a, b) in enumerate([(p[..., :, :-1], p[..., :, 1:]), (p[..., :-1, :], p[..., 1:, :])]):
        diff = np.abs(a - b)
        out[d] = [(diff > 1).sum(), (diff > 0).sum()]
    return out


def contact_surface_error(counts: np.ndarray) -> float:
    """Mean over the horizontal and vertical directions of bad / diff (a direction without any
    class change counts 0)."""
    shares = [c[0] / c[1] if c[1] > 0 else 0.0 for c in counts]
    return float(np.mean(shares))


def unimodal_mask_ties(probs: torch.Tensor) -> torch.Tensor:
    """[B, K, H, W] -> bool [B, H, W]: the distribution never rises again after it has fallen
    (p non-decreasing up to some class, non-increasing after it; exact comparisons, ties allowed).
    medprep's lenient variant (``unimodal_share_ties``)."""
    d = probs[:, 1:] - probs[:, :-1]
    fell = torch.cummax((d < 0).to(torch.int8), dim=1).values.bool()  # a strict fall at or before step k
    rises_after_fall = (d > 0)[:, 1:] & fell[:, :-1]
    return ~rises_after_fall.any(1)


def unimodal_mask(probs: torch.Tensor) -> torch.Tensor:
    """[B, K, H, W] -> bool [B, H, W], the segmentation paper's definition (reference
    ``is_unimodal_segmentation`` in rafaavc/ordinal-semantic-segmentation, src/metrics/unimodal.py):
    the steps p_0 - 0, p_1 - p_0, ..., p_{K-1} - p_{K-2}, 0 - p_{K-1}, each rounded to 0.01, have
    signs that change exactly once (+ ... + then - ... -). A step that rounds to 0 (flat) has
    sign 0 and so breaks unimodality, including the first and last steps: a pixel whose first or
    last class has p < 0.005 is not unimodal."""
    zero = probs.new_zeros(probs.shape[:1] + (1,) + probs.shape[2:])
    steps = torch.diff(probs, dim=1, prepend=zero, append=zero)
    signs = torch.sign(torch.round(steps, decimals=2))
    return torch.count_nonzero(torch.diff(signs, dim=1), dim=1) == 1


# ---------------------------------------------------------------------------------------------
# Accumulator over a validation fold


class SegMetrics:
    """Accumulates predictions slice by slice; per case (volume) Dice and HD95 at the end.

    Dice per class: per case from the case's TP/FP/FN over all its slices, then the mean over the
    cases where the class is present in the ground truth or the prediction. HD95 per class: per
    case on the stacked slices (2D for a one-slice case, 3D otherwise), mean over the cases where
    both are non-empty. Units: ``case_spacing(case_index)`` gives (slice step, row, column) in mm
    (index.json ``slice_step_mm`` and ``slice_spacing_mm``): HD95 in mm; a validation subset
    taking every s-th slice of a case stacks them with step s x slice step. Without it, voxels of
    the shard grid (``spacing`` overrides with one fixed spacing).
    """

    def __init__(self, num_classes: int, ordinal: bool = False, ranks: Optional[Sequence[int]] = None,
                 class_names: Optional[Sequence[str]] = None, spacing: Optional[Sequence[float]] = None,
                 hd: bool = True, case_spacing: Optional[Callable[[int], Sequence[float]]] = None):
        self.k = num_classes
        self.ordinal = ordinal
        self.ranks = list(ranks) if ranks is not None else None
        self.names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.spacing = spacing
        self.case_spacing = case_spacing
        self.hd = hd
        self.cases: Dict[int, Dict[int, tuple]] = defaultdict(dict)
        self.contact = np.zeros((2, 2), dtype=np.int64)
        self.unimodal = 0
        self.unimodal_ties = 0
        self.pixels = 0

    def _hd_spacing(self, case: int, order: Sequence[int], ndim: int) -> Optional[List[float]]:
        """The sampling of a case's stacked slices for HD95 (None: voxels)."""
        if self.case_spacing is not None:
            step, row, col = (float(v) for v in self.case_spacing(case))
            if ndim == 2:
                return [row, col]
            gaps = np.diff(np.asarray(order, dtype=np.float64))
            return [step * float(gaps.mean()), row, col]
        return None if self.spacing is None else list(self.spacing)[-ndim:]

    def update(self, probs: torch.Tensor, label: torch.Tensor, case_index: Sequence[int], slice_index: Sequence[int]):
        pred = probs.argmax(1)
        pn, gn = pred.cpu().numpy().astype(np.int16), label.cpu().numpy().astype(np.int16)
        for b in range(pn.shape[0]):
            self.cases[int(case_index[b])][int(slice_index[b])] = (pn[b], gn[b])
        if self.ordinal:
            self.contact += contact_surface_counts(pn, self.ranks)
            po = probs
            if self.ranks is not None and self.ranks != list(range(self.k)):
                perm = sorted(range(self.k), key=lambda c: (self.ranks[c], c))
                po = probs[:, perm]
            self.unimodal += int(unimodal_mask(po).sum())
            self.unimodal_ties += int(unimodal_mask_ties(po).sum())
            self.pixels += int(pred.numel())

    def compute(self) -> dict:
        dices = defaultdict(list)
        hds = defaultdict(list)
        for ci in sorted(self.cases):
            slices = self.cases[ci]
            order = sorted(slices)
            pv = np.stack([slices[s][0] for s in order])
            gv = np.stack([slices[s][1] for s in order])
            d = dice_from_counts(dice_counts(pv, gv, self.k))
            for c in range(self.k):
                if not math.isnan(d[c]):
                    dices[c].append(d[c])
                if self.hd and c > 0:
                    p3, g3 = (pv[0], gv[0]) if len(order) == 1 else (pv, gv)
                    h = hd95(p3 == c, g3 == c, self._hd_spacing(ci, order, p3.ndim))
                    if not math.isnan(h):
                        hds[c].append(h)
        out = {"cases": len(self.cases), "dice": {}, "hd95": {},
               "hd95_units": "px" if self.case_spacing is None and self.spacing is None else "mm"}
        for c in range(self.k):
            out["dice"][self.names[c]] = float(np.mean(dices[c])) if dices[c] else None
            if c > 0 and self.hd:
                out["hd95"][self.names[c]] = float(np.mean(hds[c])) if hds[c] else None
        fg = [out["dice"][self.names[c]] for c in range(1, self.k) if out["dice"][self.names[c]] is not None]
        out["mean_dice"] = float(np.mean(fg)) if fg else None
        fh = [v for v in out["hd95"].values() if v is not None]
        out["mean_hd95"] = float(np.mean(fh)) if fh else None
        if self.ordinal:
            out["contact_surface_error"] = contact_surface_error(self.contact)
            out["unimodal_share"] = self.unimodal / self.pixels if self.pixels else None
            out["unimodal_share_ties"] = self.unimodal_ties / self.pixels if self.pixels else None
        return out
