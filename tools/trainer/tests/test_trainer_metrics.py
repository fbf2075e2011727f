"""Metrics against hand computations and brute force."""
import itertools
import math

import numpy as np
import pytest
import torch

from medprep_train import metrics as M


def test_dice_counts_and_values_match_loop():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, (4, 5))
    gt = rng.integers(0, 3, (4, 5))
    c = M.dice_counts(pred, gt, 3)
    for k in range(3):
        tp = int(((pred == k) & (gt == k)).sum())
        fp = int(((pred == k) & (gt != k)).sum())
        fn = int(((pred != k) & (gt == k)).sum())
        assert list(c[k]) == [tp, fp, fn]
        assert M.dice_from_counts(c)[k] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # a class absent from both: NaN (excluded from means)
    assert math.isnan(M.dice_from_counts(M.dice_counts(np.zeros(4, int), np.zeros(4, int), 2))[1])


def brute_surface(m):
    out = np.zeros_like(m, dtype=bool)
    for idx in zip(*np.nonzero(m)):
        for ax in range(m.ndim):
            for d in (-1, 1):
                j = list(idx)
                j[ax] += d
                if j[ax] < 0 or j[ax] >= m.shape[ax] or not m[tuple(j)]:
                    out[idx] = True
    return out


def brute_hd95(a, b, spacing):
    sa, sb = np.argwhere(brute_surface(a)), np.argwhere(brute_surface(b))
    sp = np.asarray(spacing, float)
    d = []
    for p in sa:
        d.append(min(np.linalg.norm((p - q) * sp) for q in sb))
    for q in sb:
        d.append(min(np.linalg.norm((q - p) * sp) for p in sa))
    return np.percentile(d, 95)


def test_hd95_hand_value():
    a = np.zeros((1, 5), bool)
    b = np.zeros((1, 5), bool)
    a[0, 0] = True
    b[0, 3] = True
    assert M.hd95(a, b) == pytest.approx(3.0)
    assert math.isnan(M.hd95(a, np.zeros_like(a)))


@pytest.mark.parametrize("use_scipy", [True, False])
@pytest.mark.parametrize("shape,spacing", [((9, 11), (1.0, 1.0)), ((4, 7, 6), (2.0, 1.0, 0.5))])
def test_hd95_matches_brute_force(monkeypatch, use_scipy, shape, spacing):
    if use_scipy and M._ndi is None:
        pytest.skip("scipy not installed")
    if not use_scipy:
        monkeypatch.setattr(M, "_ndi", None)
    rng = np.random.default_rng(len(shape))
    a = rng.random(shape) < 0.35
    b = rng.random(shape) < 0.35
    assert M.surface(a).tolist() == brute_surface(a).tolist()
    assert M.hd95(a, b, spacing) == pytest.approx(brute_hd95(a, b, spacing), abs=1e-9)


def test_contact_surface_error_hand_value():
    pred = np.array([[0, 1, 3], [0, 2, 2]])
    # horizontal pairs: (0,1) d=1, (1,3) d=2, (0,2) d=2, (2,2) same -> 2 bad of 3 differing
    # vertical pairs: (0,0) same, (1,2) d=1, (3,2) d=1 -> 0 bad of 2
    c = M.contact_surface_counts(pred)
    assert c.tolist() == [[2, 3], [0, 2]]
    assert M.contact_surface_error(c) == pytest.approx((2 / 3 + 0) / 2)


def test_contact_surface_error_matches_loop_and_uses_ranks():
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 4, (2, 6, 7))
    bad = [0, 0]
    diff = [0, 0]
    for b, y, x in itertools.product(range(2), range(6), range(7)):
        for d, (dy, dx) in enumerate(((0, 1), (1, 0))):
            if y + dy < 6 and x + dx < 7:
                u, v = pred[b, y, x], pred[b, y + dy, x + dx]
                diff[d] += u != v
                bad[d] += abs(u - v) > 1
    assert M.contact_surface_counts(pred).tolist() == [[bad[0], diff[0]], [bad[1], diff[1]]]
    # ranks: classes 1 and 3 swapped in the order
    ranks = [0, 3, 2, 1]
    assert M.contact_surface_counts(pred, ranks).tolist() == M.contact_surface_counts(np.array(ranks)[pred]).tolist()


def brute_unimodal(q):
    k = len(q)
    for m in range(k):
        if all(q[i] <= q[i + 1] for i in range(m)) and all(q[i] >= q[i + 1] for i in range(m, k - 1)):
            return True
    return False


def reference_unimodal(q):
    """The segmentation paper's rule (rafaavc/ordinal-semantic-segmentation, src/metrics/unimodal.py),
    restated: steps [q0, q1 - q0, ..., -q_{K-1}], each rounded to 2 decimals, must have signs that
    change exactly once."""
    steps = [q[0]] + [q[i + 1] - q[i] for i in range(len(q) - 1)] + [-q[-1]]
    signs = [np.sign(round(s, 2)) for s in steps]
    return sum(a != b for a, b in zip(signs, signs[1:])) == 1


def test_unimodal_paper_hand_values():
    cases = {(0.1, 0.5, 0.4): True,        # steps +.1 +.4 -.1 -.4: one change
             (0.3, 0.3, 0.4): False,       # flat step 0.0 breaks it (ties allowed in the lenient variant)
             (0.9, 0.09, 0.01): True,
             (0.9, 0.096, 0.004): False,   # last step -0.004 rounds to 0
             (0.4, 0.1, 0.5): False,
             (0.2, 0.204, 0.596): False}   # step +0.004 rounds to 0
    for q, want in cases.items():
        p = torch.tensor(q, dtype=torch.float32).view(1, -1, 1, 1)
        assert bool(M.unimodal_mask(p)[0, 0, 0]) == want == reference_unimodal(q), q
    # a one-hot (certain) prediction is never unimodal by this rule: its tails are flat
    assert not M.unimodal_mask(torch.eye(4).view(4, 4, 1, 1)).any()
    rng = np.random.default_rng(5)
    p = torch.softmax(torch.from_numpy(rng.normal(size=(3, 5, 4, 4)) * 2), 1)
    got = M.unimodal_mask(p)
    for b, y, x in itertools.product(range(3), range(4), range(4)):
        assert bool(got[b, y, x]) == reference_unimodal(p[b, :, y, x].tolist())


def test_unimodal_hand_and_brute_force():
    cases = {(0.1, 0.5, 0.4): True, (0.4, 0.1, 0.5): False, (0.3, 0.3, 0.4): True, (0.5, 0.2, 0.2, 0.1): True,
             (0.3, 0.2, 0.3, 0.2): False, (0.25, 0.25, 0.25, 0.25): True}
    for q, want in cases.items():
        p = torch.tensor(q, dtype=torch.float64).view(1, -1, 1, 1)
        assert bool(M.unimodal_mask_ties(p)[0, 0, 0]) == want == brute_unimodal(q), q
    rng = np.random.default_rng(2)
    p = torch.softmax(torch.from_numpy(rng.normal(size=(3, 5, 4, 4))), 1)
    got = M.unimodal_mask_ties(p)
    for b, y, x in itertools.product(range(3), range(4), range(4)):
        assert bool(got[b, y, x]) == brute_unimodal(p[b, :, y, x].tolist())


def test_segmetrics_per_case_aggregation():
    k = 3
    met = M.SegMetrics(k, ordinal=True, class_names=["bg", "a", "b"])
    # case 0: two slices; case 1: one slice
    gt0 = [np.array([[0, 1], [1, 2]]), np.array([[0, 0], [1, 1]])]
    pr0 = [np.array([[0, 1], [2, 2]]), np.array([[0, 0], [1, 0]])]
    gt1 = np.array([[2, 2], [0, 0]])
    pr1 = np.array([[2, 0], [0, 0]])

    def onehot(p):
        return torch.from_numpy(np.eye(k)[p]).permute(2, 0, 1)[None].double()

    for s in range(2):
        met.update(onehot(pr0[s]), torch.from_numpy(gt0[s])[None], [0], [s])
    met.update(onehot(pr1), torch.from_numpy(gt1)[None], [1], [0])
    r = met.compute()
    d0 = M.dice_from_counts(M.dice_counts(np.stack(pr0), np.stack(gt0), k))
    d1 = M.dice_from_counts(M.dice_counts(pr1, gt1, k))
    assert r["dice"]["a"] == pytest.approx(d0[1])  # class a absent from case 1 (NaN there)
    assert r["dice"]["b"] == pytest.approx((d0[2] + d1[2]) / 2)
    assert r["cases"] == 2
    # one-hot predictions: unimodal everywhere with ties allowed, nowhere by the paper's rule
    assert r["unimodal_share_ties"] == 1.0 and r["unimodal_share"] == 0.0
