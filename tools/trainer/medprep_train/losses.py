"""Segmentation losses on logits [B, K, H, W] and medprep's maps.

Every definition, with its source, is written down in docs/trainer.md; the tests in
tests/test_trainer_losses.py check each one against a direct formula or a naive loop on small tensors.

Conventions: ``probs = softmax(logits, 1)``; ``label`` int64 [B, H, W] with class indices;
``sdf``/``rrw`` float [B, K, H, W] as medprep writes them (SDF positive outside, negative inside,
zero on the inner boundary; RRW +1 outside, -d/max(d) inside). Pixel-level functions return
[B, H, W]; the loss is their mean unless said otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

EPS = 1e-7

# ---------------------------------------------------------------------------------------------
# Region losses


def ce_pixel(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per pixel: -log softmax(logits)[label]."""
    return F.cross_entropy(logits, label, reduction="none")


def _onehot(label: torch.Tensor, k: int, dtype) -> torch.Tensor:
    return F.one_hot(label, k).permute(0, 3, 1, 2).to(dtype)


def soft_dice(probs: torch.Tensor, label: torch.Tensor, classes: Optional[Sequence[int]] = None, smooth: float = 1.0,
              per_image: bool = False) -> torch.Tensor:
    """Soft Dice per class: (2 sum p*g + s) / (sum p + sum g + s).

    Sums run over the batch and the pixels (``per_image=False``: returns [K']) or over each
    image's pixels (``per_image=True``: returns [B, K']); K' = the chosen classes.
    """
    k = probs.shape[1]
    g = _onehot(label, k, probs.dtype)
    if classes is not None:
        idx = torch.as_tensor(list(classes), device=probs.device, dtype=torch.long)
        probs, g = probs.index_select(1, idx), g.index_select(1, idx)
    dims = (2, 3) if per_image else (0, 2, 3)
    inter = (probs * g).sum(dims)
    return (2 * inter + smooth) / (probs.sum(dims) + g.sum(dims) + smooth)


def dice_loss(probs, label, classes=None, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over the chosen classes of the batch soft Dice."""
    return 1 - soft_dice(probs, label, classes, smooth).mean()


def dice_image(probs, label, classes=None, smooth: float = 1.0) -> torch.Tensor:
    """Per-image soft Dice loss [B]: 1 - mean over classes of the image's soft Dice."""
    return 1 - soft_dice(probs, label, classes, smooth, per_image=True).mean(1)


def continuous_dice(probs: torch.Tensor, label: torch.Tensor, classes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Continuous Dice (Shamir et al. 2019) per image and class, [B, K'].

    cDC = 2 sum(a*b) / (c sum(a) + sum(b)), a the binary ground truth, b the probabilities,
    c = sum(a*b) / sum(a*sign(b)) (c = 1 when sum(a*sign(b)) = 0).
    """
    k = probs.shape[1]
    a = _onehot(label, k, probs.dtype)
    b = probs
    if classes is not None:
        idx = torch.as_tensor(list(classes), device=probs.device, dtype=torch.long)
        a, b = a.index_select(1, idx), b.index_select(1, idx)
    ab = (a * b).sum((2, 3))
    asb = (a * torch.sign(b)).sum((2, 3))
    c = torch.where(asb > 0, ab / asb.clamp_min(EPS), torch.ones_like(ab))
    return 2 * ab / (c * a.sum((2, 3)) + b.sum((2, 3))).clamp_min(EPS)


def cdc_image(probs: torch.Tensor, label: torch.Tensor, classes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Per-image continuous-Dice loss [B] (rankable): 1 - mean cDC over the chosen classes present
    in the image's ground truth; an image with none of them uses the background class (0)."""
    k = probs.shape[1]
    classes = list(range(1, k)) if classes is None else list(classes)
    cdc_all = continuous_dice(probs, label, None)  # [B, K]
    present = _onehot(label, k, probs.dtype).sum((2, 3)) > 0  # [B, K]
    sel = torch.zeros(k, dtype=torch.bool, device=probs.device)
    sel[classes] = True
    m = present & sel[None]
    none = ~m.any(1)
    m[none, 0] = True
    mf = m.to(probs.dtype)
    return 1 - (cdc_all * mf).sum(1) / mf.sum(1)


# ---------------------------------------------------------------------------------------------
# Map losses (boundary, region-wise)


def boundary_pixel(probs: torch.Tensor, sdf: torch.Tensor, classes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Boundary loss per pixel (Kervadec et al.): mean over the chosen classes of p_k * phi_k.
    Its mean over pixels is mean(softmax * SDF) over those classes. Default: classes 1 .. K-1."""
    k = probs.shape[1]
    classes = list(range(1, k)) if classes is None else list(classes)
    idx = torch.as_tensor(classes, device=probs.device, dtype=torch.long)
    return (probs.index_select(1, idx) * sdf.index_select(1, idx)).mean(1)


def rrw_pixel(probs: torch.Tensor, rrw: torch.Tensor) -> torch.Tensor:
    """Region-wise loss per pixel (Valverde & Tohka): mean over all K classes of p_k * RRW_k.
    Its mean over pixels is mean(softmax * RRW)."""
    return (probs * rrw).mean(1)


# ---------------------------------------------------------------------------------------------
# Ordinal losses (classes in ordinal order: see rank_order)


def rank_order(probs: torch.Tensor, label: torch.Tensor, ranks: Optional[Sequence[int]]):
    """Reorders the class channels by ordinal rank; returns (probs in rank order, label as the
    position of its class in that order). Identity when ranks are 0 .. K-1."""
    k = probs.shape[1]
    if ranks is None or list(ranks) == list(range(k)):
        return probs, label
    perm = sorted(range(k), key=lambda c: (ranks[c], c))
    pos = torch.empty(k, dtype=torch.long, device=label.device)
    pos[torch.as_tensor(perm, device=label.device)] = torch.arange(k, device=label.device)
    return probs[:, perm], pos[label]


def expectation_mse_pixel(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(sum_k k * p_k - y)^2 per pixel (classes in rank order)."""
    k = probs.shape[1]
    kk = torch.arange(k, device=probs.device, dtype=probs.dtype).view(1, k, 1, 1)
    return ((probs * kk).sum(1) - y.to(probs.dtype)) ** 2


def co2_pixel(probs: torch.Tensor, y: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """CO2's unimodality term (Albuquerque, Cruz & Cardoso 2021) per pixel:
    sum_{k=0}^{K-2} relu(margin + s_k (p_{k+1} - p_k)), s_k = +1 if k >= y else -1
    (probabilities must rise up to the true class and fall after it, by at least the margin)."""
    k = probs.shape[1]
    dp = probs[:, 1:] - probs[:, :-1]  # [B, K-1, H, W]
    kk = torch.arange(k - 1, device=probs.device).view(1, k - 1, 1, 1)
    sign = torch.where(kk >= y[:, None], 1.0, -1.0).to(probs.dtype)
    return F.relu(margin + sign * dp).sum(1)


def qul_pixel(probs: torch.Tensor, y: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """Quasi-unimodal term (Albuquerque, Cruz & Cardoso 2022) per pixel:
    relu(m + p_{y-1} - p_y)[y > 0] + relu(m + p_{y+1} - p_y)[y < K-1]
    + sum_{k < y-1} relu(m + p_k - p_{y-1}) + sum_{k > y+1} relu(m + p_k - p_{y+1})."""
    k = probs.shape[1]
    y1 = y[:, None]
    gather = lambda idx: probs.gather(1, idx.clamp(0, k - 1))  # noqa: E731
    py = gather(y1)[:, 0]
    pl = gather(y1 - 1)[:, 0]
    pr = gather(y1 + 1)[:, 0]
    close = (y > 0).to(probs.dtype) * F.relu(margin + pl - py) + (y < k - 1).to(probs.dtype) * F.relu(margin + pr - py)
    kk = torch.arange(k, device=probs.device).view(1, k, 1, 1)
    left = (kk < y1 - 1).to(probs.dtype)
    right = (kk > y1 + 1).to(probs.dtype)
    distant = (left * F.relu(margin + probs - pl[:, None])).sum(1) + (right * F.relu(margin + probs - pr[:, None])).sum(1)
    return close + distant


#: ``--contact-cost``: the cost of two neighbours taking classes k and l (rank order).
CONTACT_COSTS = ("distance", "binary")
#: ``--contact-norm``: what the summed pair costs are divided by.
CONTACT_NORMS = ("pairs", "none")


def contact_cost(k: int, cost: str = "distance", device=None, dtype=torch.float32) -> torch.Tensor:
    """C[k, l] for classes in rank order: 0 for |k - l| <= 1; otherwise |k - l| - 1 ('distance',
    the reference's ``ordinal_multiplier``: more weight to more distant classes) or 1 ('binary')."""
    if cost not in CONTACT_COSTS:
        raise ValueError(f"contact cost '{cost}' is unknown; expected {' or '.join(CONTACT_COSTS)}.")
    r = torch.arange(k, device=device)
    gap = (r[:, None] - r[None, :]).abs()
    far = gap > 1
    return (far * (gap - 1) if cost == "distance" else far).to(dtype)


def contact_pair_count(k: int, norm: str = "pairs") -> int:
    """The divisor of the summed penalty: the number of ordered class pairs more than one step
    apart, (K - 1)(K - 2) ('pairs', as the reference's ``count``), or 1 ('none'); 1 when K < 3."""
    if norm not in CONTACT_NORMS:
        raise ValueError(f"contact normalisation '{norm}' is unknown; expected {' or '.join(CONTACT_NORMS)}.")
    return max((k - 1) * (k - 2), 1) if norm == "pairs" else 1


def contact_pairs(probs: torch.Tensor, cost: str = "distance", norm: str = "pairs") -> Tuple[torch.Tensor, torch.Tensor]:
    """Contact-surface penalty per 4-neighbour pair (Cristino, Cruz & Cardoso's CSNP; reference
    ``neighbor_term_v4`` in rafaavc/ordinal-semantic-segmentation, src/losses/contact_surface_tv_v4.py):
    for neighbours a (left / upper) and b, sum_{k,l} C[k, l] p_a(k) p_b(l) / N_pairs.
    Returns (horizontal [B,H,W-1], vertical [B,H-1,W])."""
    k = probs.shape[1]
    c = contact_cost(k, cost, probs.device, probs.dtype) / contact_pair_count(k, norm)
    cp = torch.einsum("kl,blhw->bkhw", c, probs)  # (C p_b)_k at every pixel
    h = (probs[..., :, :-1] * cp[..., :, 1:]).sum(1)
    v = (probs[..., :-1, :] * cp[..., 1:, :]).sum(1)
    return h, v


def contact_loss_term(probs: torch.Tensor, cost: str = "distance", norm: str = "pairs") -> torch.Tensor:
    """Mean over horizontal pairs and mean over vertical pairs, averaged (one scalar); with the
    defaults this is the reference's ``neighbor_term_v4`` exactly."""
    h, v = contact_pairs(probs, cost, norm)
    parts = [t.mean() for t in (h, v) if t.numel()]
    return sum(parts) / len(parts) if parts else probs.sum() * 0


def contact_pixel(probs: torch.Tensor, cost: str = "distance", norm: str = "pairs") -> torch.Tensor:
    """Pixel map of the contact penalty for the Top-k envelope: each pair is charged to its
    first pixel (left / upper), scaled so that the map's mean over the H x W pixels equals
    `contact_loss_term` (horizontal pairs by W / (W - 1), vertical by H / (H - 1)); the last
    column / row gets 0 for that direction."""
    h, v = contact_pairs(probs, cost, norm)
    H, W = probs.shape[-2:]
    parts = []
    if W > 1:
        parts.append(F.pad(h, (0, 1)) * (W / (W - 1)))
    if H > 1:
        parts.append(F.pad(v, (0, 0, 0, 1)) * (H / (H - 1)))
    return sum(parts) / len(parts) if parts else probs.sum(1) * 0


# ---------------------------------------------------------------------------------------------
# Schedules


@dataclass
class Sched:
    """A value constant or linear in the epoch: '0.5' or '1.0:0.25' (from epoch 0 to the last)."""

    start: float
    end: float

    @staticmethod
    def parse(spec) -> "Sched":
        if isinstance(spec, Sched):
            return spec
        if isinstance(spec, (int, float)):
            return Sched(float(spec), float(spec))
        parts = str(spec).split(":")
        try:
            if len(parts) == 1:
                return Sched(float(parts[0]), float(parts[0]))
            if len(parts) == 2:
                return Sched(float(parts[0]), float(parts[1]))
        except ValueError:
            pass
        raise ValueError(f"schedule '{spec}' is not a number or 'START:END'.")

    def at(self, epoch: int, epochs: int) -> float:
        if epochs <= 1:
            return self.start
        t = min(max(epoch / (epochs - 1), 0.0), 1.0)
        return self.start + t * (self.end - self.start)


def gradual_alpha(epoch: int, epochs0: float = 100.0, floor: float = 0.01) -> float:
    """Valverde & Tohka's gradual weight: alpha = max((100 - epoch) / 100, 0.01)."""
    return max((epochs0 - epoch) / epochs0, floor)


def kervadec_weights(epoch: int, step: float = 0.01, region0: float = 1.0, map0: float = 0.01,
                     region_floor: float = 0.1) -> Tuple[float, float]:
    """Kervadec et al.'s rebalancing ('steal' in their code): each epoch moves `step` of weight
    from the region loss to the boundary loss, the region weight never below `region_floor`:
    (max(floor, region0 - step * e), map0 + step * e)."""
    return max(region_floor, region0 - step * epoch), map0 + step * epoch


# ---------------------------------------------------------------------------------------------
# Top-k / "bottom all but sigma" envelope


def bottom_all_but_sigma(pixel_loss: torch.Tensor, sigma: float, smooth: str = "hard", tau: float = 0.1,
                         return_weights: bool = False):
    """Per image, keep the pixels whose loss is at or below mean + sigma * std (std: population,
    over the image's pixels; threshold not differentiated). 'hard': 0/1 weights; 'sigmoid':
    w = sigmoid((t - l) / tau). Returns the weighted mean per image [B]."""
    b = pixel_loss.shape[0]
    flat = pixel_loss.reshape(b, -1)
    with torch.no_grad():
        mu = flat.mean(1, keepdim=True)
        sd = flat.std(1, unbiased=False, keepdim=True) if flat.shape[1] > 1 else torch.zeros_like(mu)
        t = mu + sigma * sd
    if smooth == "hard":
        w = (flat <= t).to(flat.dtype)
    elif smooth == "sigmoid":
        w = torch.sigmoid((t - flat) / tau)
    else:
        raise ValueError(f"pixel smoothing '{smooth}' is unknown; expected hard or sigmoid.")
    img = (w * flat).sum(1) / w.sum(1).clamp_min(EPS)
    return (img, w.reshape(pixel_loss.shape)) if return_weights else img


def topk_select(image_loss: torch.Tensor, k: float, smooth: str = "sigmoid", tau: float = 0.1,
                return_weights: bool = False):
    """Emphasise the k hardest images of the batch. k <= 1: a fraction of the batch (1 = all);
    k > 1: a number of images; rounded, at least 1. The threshold theta is midway between the k-th and (k+1)-th largest
    image losses (not differentiated); 'hard': w = [L >= k-th largest]; 'sigmoid':
    w = sigmoid((L - theta) / tau). Returns sum(w L) / sum(w)."""
    b = image_loss.shape[0]
    kk = int(round(k * b)) if k <= 1 else int(round(k))
    kk = min(max(kk, 1), b)
    with torch.no_grad():
        srt = torch.sort(image_loss.detach(), descending=True).values
        kth = srt[kk - 1]
        theta = 0.5 * (srt[kk - 1] + srt[kk]) if kk < b else srt[-1] - 1.0
    if smooth == "hard":
        w = (image_loss.detach() >= kth).to(image_loss.dtype) if kk < b else torch.ones_like(image_loss)
    elif smooth == "sigmoid":
        w = torch.sigmoid((image_loss.detach() - theta) / tau) if kk < b else torch.ones_like(image_loss)
    else:
        raise ValueError(f"image smoothing '{smooth}' is unknown; expected hard or sigmoid.")
    out = (w * image_loss).sum() / w.sum().clamp_min(EPS)
    return (out, w) if return_weights else out


@dataclass
class EnvelopeConfig:
    sigma: float = 1.0
    pixel_smooth: str = "hard"
    pixel_tau: Sched = field(default_factory=lambda: Sched(0.1, 0.1))
    k: Sched = field(default_factory=lambda: Sched(1.0, 1.0))
    image_smooth: str = "sigmoid"
    image_tau: Sched = field(default_factory=lambda: Sched(0.1, 0.1))


# ---------------------------------------------------------------------------------------------
# Combined loss

REGION_TERMS = ("ce", "dice", "cdc")
MAP_TERMS = ("boundary", "rrw")
ORDINAL_TERMS = ("qul", "emse", "co2", "contact")
ALL_TERMS = REGION_TERMS + MAP_TERMS + ORDINAL_TERMS
DEFAULT_LAMBDA = {"qul": 0.1, "emse": 0.1, "co2": 0.1, "contact": 1.0}


def parse_loss_spec(spec: str) -> List[Tuple[str, float]]:
    """'ce+rrw' -> [('ce', 1), ('rrw', 1)]; '0.5*dice+boundary' -> [('dice', .5), ('boundary', 1)]."""
    out = []
    for part in spec.replace(" ", "").split("+"):
        if not part:
            continue
        m = re.fullmatch(r"(?:([0-9.eE-]+)\*)?([a-z0-9_]+)", part)
        if not m or m.group(2) not in ALL_TERMS:
            raise ValueError(f"loss term '{part}' in '{spec}' is unknown; expected terms from {', '.join(ALL_TERMS)}, "
                             "optionally weighted like '0.5*dice', joined with '+'.")
        out.append((m.group(2), float(m.group(1)) if m.group(1) else 1.0))
    if not out:
        raise ValueError(f"loss '{spec}' names no term.")
    return out


@dataclass
class LossConfig:
    spec: str = "ce"
    schedule: str = "none"  # none | gradual | kervadec
    gradual_epochs: float = 100.0
    kervadec_step: float = 0.01
    boundary_classes: Optional[List[int]] = None
    dice_classes: Optional[List[int]] = None
    ordinal_lambda: Optional[float] = None
    ordinal_margin: float = 0.05
    contact_cost: str = "distance"
    contact_norm: str = "pairs"
    ranks: Optional[List[int]] = None
    envelope: Optional[EnvelopeConfig] = None
    deep_supervision_weights: str = "halving"


class SegLoss:
    """The weighted sum of the selected terms, with the region/map schedule and optional Top-k
    envelope. Call with (logits or list of logits for deep supervision, batch dict, epoch, epochs);
    returns (loss, {component: value})."""

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg
        self.terms = parse_loss_spec(cfg.spec)
        if cfg.schedule not in ("none", "gradual", "kervadec"):
            raise ValueError(f"schedule '{cfg.schedule}' is unknown; expected none, gradual or kervadec.")
        contact_cost(3, cfg.contact_cost)  # reject unknown names before the first batch
        contact_pair_count(3, cfg.contact_norm)
        names = [t for t, _ in self.terms]
        self.needs = {"sdf": "boundary" in names, "rrw": "rrw" in names}

    def group_factors(self, epoch: int) -> Tuple[float, float]:
        if self.cfg.schedule == "gradual":
            a = gradual_alpha(epoch, self.cfg.gradual_epochs)
            return a, 1 - a
        if self.cfg.schedule == "kervadec":
            return kervadec_weights(epoch, self.cfg.kervadec_step)
        return 1.0, 1.0

    def weights(self, epoch: int) -> List[Tuple[str, float]]:
        fr, fm = self.group_factors(epoch)
        return [(t, w * (fm if t in MAP_TERMS else fr)) for t, w in self.terms]

    def _lam(self, t: str) -> float:
        return self.cfg.ordinal_lambda if self.cfg.ordinal_lambda is not None else DEFAULT_LAMBDA[t]

    def _pixel_term(self, t: str, logits, probs, label, batch, suffix: str):
        """Pixel map [B,H,W] of term t, or None for image-level terms (dice, cdc)."""
        if t == "ce":
            return ce_pixel(logits, label)
        if t == "boundary":
            return boundary_pixel(probs, batch["sdf" + suffix], self.cfg.boundary_classes)
        if t == "rrw":
            return rrw_pixel(probs, batch["rrw" + suffix])
        if t in ORDINAL_TERMS:
            po, yo = rank_order(probs, label, self.cfg.ranks)
            m = self.cfg.ordinal_margin
            term = {"qul": lambda: qul_pixel(po, yo, m), "co2": lambda: co2_pixel(po, yo, m),
                    "emse": lambda: expectation_mse_pixel(po, yo),
                    "contact": lambda: contact_pixel(po, self.cfg.contact_cost, self.cfg.contact_norm)}[t]()
            return ce_pixel(logits, label) + self._lam(t) * term
        return None

    def _scalar_term(self, t: str, logits, probs, label, batch, suffix: str) -> torch.Tensor:
        if t == "dice":
            return dice_loss(probs, label, self.cfg.dice_classes)
        if t == "cdc":
            return cdc_image(probs, label, self.cfg.dice_classes).mean()
        if t == "contact":
            po, _ = rank_order(probs, label, self.cfg.ranks)
            return ce_pixel(logits, label).mean() + self._lam(t) * contact_loss_term(po, self.cfg.contact_cost,
                                                                                   self.cfg.contact_norm)
        return self._pixel_term(t, logits, probs, label, batch, suffix).mean()

    def _image_term(self, t, logits, probs, label, batch, suffix):
        if t == "dice":
            return dice_image(probs, label, self.cfg.dice_classes)
        if t == "cdc":
            return cdc_image(probs, label, self.cfg.dice_classes)
        return None

    def one_scale(self, logits, batch, epoch: int, epochs: int, scale: int = 1, envelope: bool = True):
        suffix = "" if scale == 1 else f"_s{scale}"
        label = batch["label" + suffix]
        probs = torch.softmax(logits, 1)
        comps: Dict[str, float] = {}
        ws = self.weights(epoch)
        env = self.cfg.envelope if envelope else None
        if env is None:
            total = logits.new_zeros(())
            for t, w in ws:
                v = self._scalar_term(t, logits, probs, label, batch, suffix)
                comps[t] = float(v.detach())
                total = total + w * v
            return total, comps
        pix = None
        img = logits.new_zeros(logits.shape[0])
        for t, w in ws:
            p = self._pixel_term(t, logits, probs, label, batch, suffix)
            if p is not None:
                comps[t] = float(p.detach().mean())
                pix = w * p if pix is None else pix + w * p
            else:
                v = self._image_term(t, logits, probs, label, batch, suffix)
                comps[t] = float(v.detach().mean())
                img = img + w * v
        if pix is not None:
            img = img + bottom_all_but_sigma(pix, env.sigma, env.pixel_smooth, env.pixel_tau.at(epoch, epochs))
        total = topk_select(img, env.k.at(epoch, epochs), env.image_smooth, env.image_tau.at(epoch, epochs))
        return total, comps

    def __call__(self, out, batch, epoch: int = 0, epochs: int = 1):
        if isinstance(out, (list, tuple)):
            scales = [1] + [int(-(-batch["label"].shape[-1] // o.shape[-1])) for o in out[1:]]
            raw = [0.5 ** i for i in range(len(out))]
            norm = sum(raw)
            total, comps = None, {}
            for i, (o, s) in enumerate(zip(out, scales)):
                v, c = self.one_scale(o, batch, epoch, epochs, s, envelope=(i == 0))
                total = raw[i] / norm * v if total is None else total + raw[i] / norm * v
                if i == 0:
                    comps = c
            return total, comps
        return self.one_scale(out, batch, epoch, epochs)
