"""Each loss against a direct formula: hand-computed values or a naive loop over pixels."""
import math

import numpy as np
import pytest
import torch

from medprep_train import losses as L


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def rand_case(b=2, k=4, h=3, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, h, w, generator=g, dtype=torch.float64)
    label = torch.randint(0, k, (b, h, w), generator=g)
    sdf = torch.randn(b, k, h, w, generator=g, dtype=torch.float64) * 3
    rrw = torch.rand(b, k, h, w, generator=g, dtype=torch.float64) * 2 - 1
    return logits, label, sdf, rrw


def softmax_np(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# --- cross-entropy, Dice, cDC -----------------------------------------------------------------

def test_ce_matches_loop():
    logits, label, _, _ = rand_case()
    got = L.ce_pixel(logits, label)
    b, k, h, w = logits.shape
    for i in range(b):
        for y in range(h):
            for x in range(w):
                z = logits[i, :, y, x].numpy()
                ref = -math.log(math.exp(z[label[i, y, x]]) / np.exp(z).sum())
                assert got[i, y, x].item() == pytest.approx(ref, abs=1e-12)


def test_soft_dice_matches_loop():
    logits, label, _, _ = rand_case()
    p = torch.softmax(logits, 1)
    b, k, h, w = p.shape
    ref = []
    for c in range(k):
        inter = sp = sg = 0.0
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    g = 1.0 if label[i, y, x] == c else 0.0
                    inter += p[i, c, y, x].item() * g
                    sp += p[i, c, y, x].item()
                    sg += g
        ref.append((2 * inter + 1) / (sp + sg + 1))
    assert L.dice_loss(p, label).item() == pytest.approx(1 - np.mean(ref), abs=1e-12)
    assert L.dice_loss(p, label, classes=[1, 3]).item() == pytest.approx(1 - (ref[1] + ref[3]) / 2, abs=1e-12)


def test_continuous_dice_hand_value():
    # a = [1,1,0,0], b = [0.8,0.6,0.2,0]: sum ab = 1.4, sum a*sign(b) = 2 -> c = 0.7,
    # cDC = 2*1.4 / (0.7*2 + 1.6) = 2.8 / 3.0
    b1 = torch.tensor([0.8, 0.6, 0.2, 0.0]).view(1, 1, 1, 4)
    probs = torch.cat([1 - b1, b1], 1)
    label = torch.tensor([1, 1, 0, 0]).view(1, 1, 4)
    cdc = L.continuous_dice(probs, label, classes=[1])
    assert cdc.item() == pytest.approx(2.8 / 3.0, abs=1e-12)
    # binary prediction equal to the truth: cDC = 1
    assert L.continuous_dice(torch.cat([1 - label[:, None].double(), label[:, None].double()], 1), label, [1]).item() == pytest.approx(1.0)


def test_cdc_image_uses_present_classes_and_background_fallback():
    logits, label, _, _ = rand_case(b=2, k=3, h=2, w=2, seed=3)
    label[1] = 0  # image 1 has no foreground
    label[0] = torch.tensor([[0, 1], [1, 0]])  # class 2 absent from image 0
    p = torch.softmax(logits, 1)
    cd = L.continuous_dice(p, label)
    got = L.cdc_image(p, label)
    assert got[0].item() == pytest.approx(1 - cd[0, 1].item())
    assert got[1].item() == pytest.approx(1 - cd[1, 0].item())


# --- boundary and region-wise ------------------------------------------------------------------

def test_boundary_loss_is_mean_softmax_times_sdf_over_chosen_classes():
    logits, label, sdf, _ = rand_case()
    p = torch.softmax(logits, 1)
    b, k, h, w = p.shape
    for classes in (None, [2], [0, 3]):
        cs = list(range(1, k)) if classes is None else classes
        s = sum(p[i, c, y, x].item() * sdf[i, c, y, x].item() for i in range(b) for c in cs for y in range(h) for x in range(w))
        ref = s / (b * len(cs) * h * w)
        assert L.boundary_pixel(p, sdf, classes).mean().item() == pytest.approx(ref, abs=1e-12)


def test_boundary_hand_value():
    # one pixel inside the class (sdf 0 on the inner boundary), one outside at distance 2
    p1 = torch.tensor([0.9, 0.3]).view(1, 1, 1, 2)
    probs = torch.cat([1 - p1, p1], 1)
    sdf = torch.tensor([[0.0, 0.0], [0.0, 2.0]]).view(1, 2, 1, 2)  # class-0 map unused
    # mean over class 1: (0.9*0 + 0.3*2) / 2 = 0.3
    assert L.boundary_pixel(probs, sdf).mean().item() == pytest.approx(0.3)


def test_rrw_loss_is_mean_softmax_times_rrw():
    logits, label, _, rrw = rand_case()
    p = torch.softmax(logits, 1)
    ref = (p.numpy() * rrw.numpy()).sum() / p.numel()
    assert L.rrw_pixel(p, rrw).mean().item() == pytest.approx(ref, abs=1e-12)


def test_gradual_alpha_and_kervadec_weights():
    assert L.gradual_alpha(0) == 1.0
    assert L.gradual_alpha(50) == 0.5
    assert L.gradual_alpha(99) == pytest.approx(0.01)
    assert L.gradual_alpha(100) == 0.01 and L.gradual_alpha(250) == 0.01
    assert L.kervadec_weights(0) == (1.0, 0.01)
    r, m = L.kervadec_weights(10)
    assert (r, m) == (pytest.approx(0.9), pytest.approx(0.11))
    r, m = L.kervadec_weights(95)
    assert (r, m) == (pytest.approx(0.1), pytest.approx(0.96))


def test_segloss_schedules_combine_terms():
    logits, label, sdf, rrw = rand_case()
    batch = {"label": label, "sdf": sdf, "rrw": rrw}
    p = torch.softmax(logits, 1)
    ce = L.ce_pixel(logits, label).mean().item()
    rw = L.rrw_pixel(p, rrw).mean().item()
    bd = L.boundary_pixel(p, sdf).mean().item()
    dc = L.dice_loss(p, label).item()
    equal = L.SegLoss(L.LossConfig(spec="ce+rrw"))(logits, batch, 30, 100)[0].item()
    assert equal == pytest.approx(ce + rw)
    grad = L.SegLoss(L.LossConfig(spec="ce+rrw", schedule="gradual"))(logits, batch, 30, 100)[0].item()
    assert grad == pytest.approx(0.7 * ce + 0.3 * rw)
    grad_d = L.SegLoss(L.LossConfig(spec="dice+rrw", schedule="gradual"))(logits, batch, 120, 200)[0].item()
    assert grad_d == pytest.approx(0.01 * dc + 0.99 * rw)
    kerv = L.SegLoss(L.LossConfig(spec="0.5*dice+boundary", schedule="kervadec"))(logits, batch, 10, 100)[0].item()
    assert kerv == pytest.approx(0.5 * 0.9 * dc + 0.11 * bd)


# --- ordinal -----------------------------------------------------------------------------------

def loop_pixels(probs, label, fn):
    b, k, h, w = probs.shape
    out = torch.zeros(b, h, w)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                out[i, y, x] = fn([probs[i, c, y, x].item() for c in range(k)], int(label[i, y, x]))
    return out


def test_expectation_mse_matches_loop():
    logits, label, _, _ = rand_case()
    p = torch.softmax(logits, 1)
    ref = loop_pixels(p, label, lambda q, y: (sum(c * qc for c, qc in enumerate(q)) - y) ** 2)
    assert torch.allclose(L.expectation_mse_pixel(p, label), ref, atol=1e-12)


def co2_ref(q, y, m=0.05):
    s = 0.0
    for k in range(len(q) - 1):
        if k >= y:  # right of the true class: must fall
            s += max(0.0, m + q[k + 1] - q[k])
        else:  # left of it: must rise
            s += max(0.0, m - (q[k + 1] - q[k]))
    return s


def qul_ref(q, y, m=0.05):
    k = len(q)
    s = 0.0
    if y > 0:
        s += max(0.0, m + q[y - 1] - q[y])
    if y < k - 1:
        s += max(0.0, m + q[y + 1] - q[y])
    for j in range(k):
        if j < y - 1:
            s += max(0.0, m + q[j] - q[y - 1])
        if j > y + 1:
            s += max(0.0, m + q[j] - q[y + 1])
    return s


def test_co2_and_qul_hand_values():
    p = torch.tensor([0.1, 0.6, 0.3]).view(1, 3, 1, 1)
    # y = 1: rising 0.1 -> 0.6 and falling 0.6 -> 0.3, both by more than the margin: 0
    assert L.co2_pixel(p, torch.tensor([[[1]]])).item() == pytest.approx(0.0)
    # y = 0: step 0 must fall but rises by 0.5 -> 0.05 + 0.5; step 1 falls by 0.3 -> 0
    assert L.co2_pixel(p, torch.tensor([[[0]]])).item() == pytest.approx(0.55)
    # QUL, y = 0: right neighbour 0.6 > 0.1 -> 0.05 + 0.5; class 2 (distant) vs p_1: 0.05 + 0.3 - 0.6 < 0
    assert L.qul_pixel(p, torch.tensor([[[0]]])).item() == pytest.approx(0.55)
    # QUL, y = 2: left neighbour 0.6 > 0.3 -> 0.05 + 0.3; class 0 vs p_1: 0.05 + 0.1 - 0.6 < 0
    assert L.qul_pixel(p, torch.tensor([[[2]]])).item() == pytest.approx(0.35)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_co2_and_qul_match_loops(k):
    logits, label, _, _ = rand_case(k=k, seed=k)
    p = torch.softmax(logits * 2, 1)
    assert torch.allclose(L.co2_pixel(p, label, 0.05), loop_pixels(p, label, co2_ref), atol=1e-12)
    assert torch.allclose(L.qul_pixel(p, label, 0.05), loop_pixels(p, label, qul_ref), atol=1e-12)


def reference_contact_v4(P):
    """The reference's definition (rafaavc/ordinal-semantic-segmentation, contact_surface_tv_v4.py,
    neighbor_term_v4), restated as loops: for every ordered class pair (k, l) more than one step
    apart, (|k - l| - 1) * (mean of p(k) p(l) over horizontal pairs + the same over vertical
    pairs) / 2, divided by the number of such class pairs."""
    b, K, h, w = P.shape
    measure, count = 0.0, 0
    for k in range(K):
        for l in range(K):
            if abs(k - l) <= 1:
                continue
            hx = [P[i, k, y, x].item() * P[i, l, y, x + 1].item() for i in range(b) for y in range(h) for x in range(w - 1)]
            vy = [P[i, k, y, x].item() * P[i, l, y + 1, x].item() for i in range(b) for y in range(h - 1) for x in range(w)]
            measure += (abs(k - l) - 1) * (np.mean(hx) + np.mean(vy)) / 2
            count += 1
    return measure / count if count else 0.0


def test_contact_hand_values():
    # 2x2, certain classes [[0, 3], [1, 2]] (K = 4): one horizontal pair 3 steps apart (cost
    # 3 - 1 = 2) among 2 horizontal pairs, none vertical; (K-1)(K-2) = 6 class pairs:
    # reference = (2 * 1/2 + 0) / 2 / 6 = 1/12
    p = torch.nn.functional.one_hot(torch.tensor([[[0, 3], [1, 2]]]), 4).permute(0, 3, 1, 2).double()
    assert L.contact_loss_term(p).item() == pytest.approx(1 / 12, abs=1e-15)
    assert L.contact_loss_term(p, "binary", "pairs").item() == pytest.approx(1 / 24, abs=1e-15)
    assert L.contact_loss_term(p, "distance", "none").item() == pytest.approx(1 / 2, abs=1e-15)
    assert L.contact_loss_term(p, "binary", "none").item() == pytest.approx(1 / 4, abs=1e-15)
    # neighbours in the order cost nothing; K = 2 has no pair to count
    q = torch.nn.functional.one_hot(torch.tensor([[[0, 1], [1, 2]]]), 4).permute(0, 3, 1, 2).double()
    assert L.contact_loss_term(q).item() == 0.0
    assert L.contact_loss_term(torch.softmax(torch.randn(1, 2, 3, 3), 1)).item() == 0.0
    with pytest.raises(ValueError, match="'squared'"):
        L.contact_cost(4, "squared")


@pytest.mark.parametrize("k", [3, 4, 6])
def test_contact_equals_reference_definition(k):
    logits, _, _, _ = rand_case(k=k, h=3, w=4, seed=k)
    pr = torch.softmax(logits, 1)
    assert L.contact_loss_term(pr).item() == pytest.approx(reference_contact_v4(pr), abs=1e-12)
    # without the pair count the term is (K-1)(K-2) times larger: 2, 6, 20 for K = 3, 4, 6
    assert L.contact_loss_term(pr, norm="none").item() == pytest.approx((k - 1) * (k - 2) * reference_contact_v4(pr), rel=1e-12)
    # the Top-k pixel map has the same mean
    assert L.contact_pixel(pr).mean().item() == pytest.approx(L.contact_loss_term(pr).item(), abs=1e-12)


def test_ordinal_terms_are_ce_plus_lambda_term():
    logits, label, _, _ = rand_case()
    p = torch.softmax(logits, 1)
    ce = L.ce_pixel(logits, label).mean().item()
    batch = {"label": label}
    for name, term in (("qul", L.qul_pixel(p, label, 0.05).mean()), ("co2", L.co2_pixel(p, label, 0.05).mean()),
                       ("emse", L.expectation_mse_pixel(p, label).mean()), ("contact", L.contact_loss_term(p))):
        got = L.SegLoss(L.LossConfig(spec=name, ordinal_lambda=0.3))(logits, batch)[0].item()
        assert got == pytest.approx(ce + 0.3 * term.item(), abs=1e-12), name


def test_rank_order_permutes_classes():
    logits, label, _, _ = rand_case(k=3)
    p = torch.softmax(logits, 1)
    ranks = [0, 2, 1]  # class 2 sits between 0 and 1
    po, yo = L.rank_order(p, label, ranks)
    assert torch.equal(po, p[:, [0, 2, 1]])
    assert torch.equal(yo, torch.tensor([0, 2, 1])[label])


# --- Top-k / bottom all but sigma ---------------------------------------------------------------

def test_bottom_all_but_sigma_hand_value():
    pix = torch.tensor([1.0, 1.0, 1.0, 10.0]).view(1, 2, 2)
    # mean 3.25, std 3.897: threshold 7.147 drops the 10
    assert L.bottom_all_but_sigma(pix, 1.0, "hard").item() == pytest.approx(1.0)
    # sigma large: keeps everything -> plain mean
    assert L.bottom_all_but_sigma(pix, 10.0, "hard").item() == pytest.approx(3.25)


def test_bottom_all_but_sigma_sigmoid_matches_formula():
    g = torch.Generator().manual_seed(1)
    pix = torch.rand(3, 4, 5, generator=g, dtype=torch.float64)
    got = L.bottom_all_but_sigma(pix, 0.5, "sigmoid", 0.2)
    for i in range(3):
        v = pix[i].reshape(-1).numpy()
        t = v.mean() + 0.5 * v.std()
        w = 1 / (1 + np.exp(-(t - v) / 0.2))
        assert got[i].item() == pytest.approx((w * v).sum() / w.sum(), abs=1e-12)


def test_topk_select_hand_and_formula():
    img = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # k = 0.5 of 4 images: the two largest, 3 and 4
    assert L.topk_select(img, 0.5, "hard").item() == pytest.approx(3.5)
    assert L.topk_select(img, 2, "hard").item() == pytest.approx(3.5)
    # all images: plain mean
    assert L.topk_select(img, 1.0, "sigmoid").item() == pytest.approx(2.5)
    # sigmoid: theta midway between the 2nd and 3rd largest (2.5)
    w = 1 / (1 + np.exp(-(img.numpy() - 2.5) / 0.3))
    assert L.topk_select(img, 0.5, "sigmoid", 0.3).item() == pytest.approx((w * img.numpy()).sum() / w.sum(), abs=1e-12)


def test_envelope_reduces_to_plain_loss_and_schedules():
    logits, label, sdf, rrw = rand_case(b=3)
    batch = {"label": label, "sdf": sdf, "rrw": rrw}
    plain = L.SegLoss(L.LossConfig(spec="ce+rrw"))(logits, batch)[0].item()
    env = L.EnvelopeConfig(sigma=100.0, pixel_smooth="hard", k=L.Sched(1.0, 1.0))
    wrapped = L.SegLoss(L.LossConfig(spec="ce+rrw", envelope=env))(logits, batch)[0].item()
    assert wrapped == pytest.approx(plain, abs=1e-12)
    # so do cdc (per image already) and contact (its pixel map keeps the pair means), not dice
    # (per image inside the envelope, over the batch outside)
    for spec in ("ce+cdc", "contact", "ce+boundary+contact"):
        plain = L.SegLoss(L.LossConfig(spec=spec))(logits, batch)[0].item()
        assert L.SegLoss(L.LossConfig(spec=spec, envelope=env))(logits, batch)[0].item() == pytest.approx(plain, abs=1e-12), spec
    plain = L.SegLoss(L.LossConfig(spec="dice"))(logits, batch)[0].item()
    assert L.SegLoss(L.LossConfig(spec="dice", envelope=env))(logits, batch)[0].item() != pytest.approx(plain, abs=1e-6)
    # schedules: linear from start to end over the epochs
    s = L.Sched.parse("1.0:0.5")
    assert (s.at(0, 3), s.at(1, 3), s.at(2, 3)) == (1.0, 0.75, 0.5)
    # with a dice term (image level) and k = 1 image: the loss is the hardest image's loss
    env1 = L.EnvelopeConfig(sigma=100.0, k=L.Sched(0.01, 0.01), image_smooth="hard")
    p = torch.softmax(logits, 1)
    per_img = L.ce_pixel(logits, label).mean((1, 2)) + L.dice_image(p, label)
    got = L.SegLoss(L.LossConfig(spec="ce+dice", envelope=env1))(logits, batch)[0].item()
    assert got == pytest.approx(per_img.max().item(), abs=1e-12)


def test_envelope_gradients_flow():
    logits, label, sdf, rrw = rand_case(b=4)
    logits.requires_grad_(True)
    env = L.EnvelopeConfig(sigma=1.0, pixel_smooth="sigmoid", k=L.Sched(0.5, 0.5), image_smooth="sigmoid")
    loss, _ = L.SegLoss(L.LossConfig(spec="ce+cdc+boundary", envelope=env))(logits, {"label": label, "sdf": sdf, "rrw": rrw})
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_deep_supervision_weights_halve():
    logits, label, sdf, rrw = rand_case(b=2, h=4, w=4)
    small = torch.randn(2, 4, 2, 2, dtype=torch.float64)
    batch = {"label": label, "label_s2": label[:, ::2, ::2], "rrw": rrw, "rrw_s2": rrw[:, :, ::2, ::2]}
    f = L.SegLoss(L.LossConfig(spec="ce+rrw"))
    full = f.one_scale(logits, batch, 0, 1, 1)[0].item()
    half = f.one_scale(small, batch, 0, 1, 2)[0].item()
    got = f([logits, small], batch)[0].item()
    assert got == pytest.approx((full + 0.5 * half) / 1.5, abs=1e-12)


def test_loss_spec_errors_name_the_term():
    with pytest.raises(ValueError, match="'focal'"):
        L.parse_loss_spec("ce+focal")
    assert L.parse_loss_spec("ce + 0.5*dice") == [("ce", 1.0), ("dice", 0.5)]
