"""Which samples a run visits, in what order: the training sampler and the validation subsets.

Everything here depends only on the index, the seed and the epoch, never on the number of
DataLoader workers, so a fixed seed gives the same batches whatever ``--workers`` is.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np
from torch.utils.data import Sampler
from torch.utils.data.distributed import DistributedSampler


class EpochSampler(Sampler):
    """Yields ``(epoch, i)`` pairs for `MedprepDataset.__getitem__`.

    The epoch travels with each index because a persistent DataLoader worker holds its own copy
    of the dataset, which never sees ``set_epoch`` calls made in the main process: the epoch
    number, and so the augmentation draws, would stay at 0 there. The order is
    DistributedSampler's (a permutation seeded with seed + epoch; ``world`` = 1 outside DDP), so
    it does not depend on how many workers draw from a shared generator either.
    """

    def __init__(self, dataset, shuffle: bool, seed: int, world: int = 1, rank: int = 0):
        self.inner = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.inner.set_epoch(self.epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, int(i)) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def _by_case(index, samples: Sequence[int]) -> Dict[int, np.ndarray]:
    """Samples grouped by case, each group in slice order (samples of a case are consecutive)."""
    samples = np.asarray(samples, dtype=np.int64)
    cases = index.case_of_sample[samples]
    return {int(c): np.sort(samples[cases == c]) for c in np.unique(cases)}


def spread_samples(index, samples: Sequence[int], n: int) -> np.ndarray:
    """At most `n` of `samples`, spread over every case: each case gets a share proportional to
    its slice count (at least one), taken at a constant stride centred in the case, so a
    subsampled case is still a regular stack (its HD95 uses stride x slice step as the spacing)."""
    groups = _by_case(index, samples)
    total = sum(len(g) for g in groups.values())
    if n >= total:
        return np.sort(np.asarray(samples, dtype=np.int64))
    order = sorted(groups)
    if n < len(groups):  # fewer slices than cases: the middle slice of evenly spread cases
        pick = [order[int(round(j))] for j in np.linspace(0, len(order) - 1, n)]
        return np.sort(np.array([groups[c][len(groups[c]) // 2] for c in pick], dtype=np.int64))
    quota = {c: max(1, int(math.floor(n * len(groups[c]) / total))) for c in order}
    while sum(quota.values()) > n:  # rounding up the ones made it too many: trim the largest shares
        c = max(order, key=lambda c: (quota[c], -c))
        quota[c] -= 1
    out = []
    for c in order:
        g, q = groups[c], quota[c]
        stride = max(1, len(g) // q)
        start = (len(g) - 1 - (q - 1) * stride) // 2
        out.extend(g[start + stride * np.arange(q)])
    return np.sort(np.asarray(out, dtype=np.int64))


def overlay_samples(index, samples: Sequence[int], n: int, label_of) -> List[int]:
    """`n` slices to draw, spread over the validation cases (evenly spaced cases, then a second
    round when there are fewer cases than overlays), each from the case's well-filled slices:
    those with at least half the foreground of the case's largest (or, if they are too few, the
    largest ones), evenly spaced among them. A case without foreground gives its middle slice. `label_of(sample)` returns the label [H, W]."""
    if n <= 0:
        return []
    groups = _by_case(index, samples)
    order = sorted(groups)
    if not order:
        return []
    per_case = math.ceil(n / len(order))
    cases = [order[int(round(j))] for j in np.linspace(0, len(order) - 1, min(n, len(order)))]
    picks: List[int] = []
    for c in cases:
        g = groups[c]
        area = np.array([int((np.asarray(label_of(int(s))) > 0).sum()) for s in g])
        if area.max() == 0:
            cand = g[len(g) // 2: len(g) // 2 + 1]
        else:  # the well-filled slices; the next largest ones too if they are fewer than needed
            filled = int((area * 2 >= area.max()).sum())
            top = np.argsort(-area, kind="stable")[:max(filled, min(per_case, int((area > 0).sum())))]
            cand = g[np.sort(top)]
        k = min(per_case, len(cand))
        # interior points of k + 2 evenly spaced ones: away from the ends of the filled range
        at = np.unique(np.round(np.linspace(0, len(cand) - 1, k + 2)[1:-1]).astype(np.int64))
        if len(at) < k:  # too few candidates for interior points: spread over all of them
            at = np.unique(np.round(np.linspace(0, len(cand) - 1, k)).astype(np.int64))
        picks.extend(int(cand[j]) for j in at)
    if len(picks) > n:
        picks = [picks[int(round(j))] for j in np.linspace(0, len(picks) - 1, n)]
    return sorted(picks)
