"""CORAL losses against naive loops and hand values."""
import math

import pytest
import torch
import torch.nn.functional as F

from medprep_train.coral import CoralNet, coral_loss, oal_loss, ral_loss, two_views


def ral_naive(z, p, t):
    z = F.normalize(z, dim=1)
    m = len(p)
    tot, n = 0.0, 0
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            dij = abs(p[i] - p[j])
            den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(m) if k != i and abs(p[i] - p[k]) >= dij)
            l = -math.log(math.exp(float(z[i] @ z[j]) / t) / den)
            w = 1 / (1 + math.exp(-dij))
            tot += w * l
            n += 1
    return tot / n


def oal_naive(z, p, u):
    """The reference's _compute_oal_loss (haoyiwang25/CORAL): raw features, -mean cosine."""
    u = u / u.norm()
    vals = []
    for i in range(len(p)):
        for j in range(len(p)):
            if p[i] < p[j]:
                d = z[j] - z[i]
                d = d / d.norm()
                vals.append(-float(d @ u))
    return sum(vals) / len(vals)


def test_ral_matches_naive_loop_with_ties():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64)
    # positions from the shards are (i+1)/N in float64; duplicates = the two views of one slice
    p = torch.tensor([1 / 4, 2 / 4, 3 / 4, 1.0, 1 / 4, 1 / 3, 2 / 3], dtype=torch.float64)
    assert ral_loss(z, p, 0.1).item() == pytest.approx(ral_naive(z, p.tolist(), 0.1), rel=1e-10)


def test_ral_hand_value_two_slices():
    # with two samples each denominator holds only the candidate itself: loss 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert ral_loss(z, torch.tensor([0.5, 1.0], dtype=torch.float64)).item() == pytest.approx(0.0)
    # three samples, anchor 0 at p=0: candidate 1 (closest) competes with 1 and 2
    z3 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p3 = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert ral_loss(z3, p3, 0.1).item() == pytest.approx(ral_naive(z3, p3.tolist(), 0.1), rel=1e-10)


def test_oal_matches_naive_loop_and_hand_value():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    p = torch.tensor([0.2, 0.4, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64)
    u = torch.randn(4, generator=g, dtype=torch.float64)
    assert oal_loss(z, p, u).item() == pytest.approx(oal_naive(z, p.tolist(), u), rel=1e-10)
    # features moving exactly along u with position: -1 (the minimum)
    zz = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    u2 = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert oal_loss(zz, torch.tensor([0.1, 0.9], dtype=torch.float64), u2).item() == pytest.approx(-1.0, abs=1e-12)
    # raw projections, not normalised ones: z0 = (1, 0), z1 = (3, 1) -> direction (2, 1)/sqrt(5),
    # u = (1, 0): -2/sqrt(5); normalising z first would give (0.949 - 1, 0.316)/|.| -> -0.158
    z2 = torch.tensor([[1.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    u3 = torch.tensor([2.0, 0.0], dtype=torch.float64)
    assert oal_loss(z2, torch.tensor([0.2, 0.4], dtype=torch.float64), u3).item() == pytest.approx(-2 / math.sqrt(5), abs=1e-12)


def test_coral_net_trains_one_step():
    torch.manual_seed(0)
    net = CoralNet(1, depth=2, width=4, proj_dim=8, hidden=16)
    x = torch.randn(3, 1, 16, 16)
    p = torch.tensor([1 / 3, 2 / 3, 1.0], dtype=torch.float64)
    v = two_views(x, torch.Generator().manual_seed(0))
    assert v.shape == (6, 1, 16, 16)
    z = net(v)
    loss, comps = coral_loss(z, torch.cat([p, p]), net.direction)
    loss.backward()
    assert set(comps) == {"ral", "oal"} and torch.isfinite(loss)
    assert net.direction.grad is not None and net.encoder.blocks[0][0].weight.grad is not None


def test_two_views_flip_in_plane():
    # a horizontal ramp: some views are mirrored (ramp falling), some not; no crop/intensity
    # change can turn a rising ramp into a falling one
    x = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(16, 1, 32, 32).contiguous()
    v = two_views(x, torch.Generator().manual_seed(3))
    slope = (v[..., 24:].mean((1, 2, 3)) - v[..., :8].mean((1, 2, 3)))
    assert (slope > 0.2).any() and (slope < -0.2).any()
