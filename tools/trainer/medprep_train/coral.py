"""CORAL pretraining (Wang, "Coordinative Learning with Ordinal and Relational Priors for
Volumetric Medical Image Segmentation", arXiv 2511.11276): the U-Net encoder and a projection head
learn from two augmented views of each slice, using each slice's position p = (i + 1) / N from the
shards (float64).

- Relational ranking (RAL): for anchor i and candidate j != i,
  l_ij = -log( exp(s_ij / t) / sum_{k != i, |p_i - p_k| >= |p_i - p_j|} exp(s_ik / t) ),
  weighted by w_ij = sigmoid(|p_i - p_j|); L_RAL = mean over all ordered pairs (i, j), i != j.
- Ordinal alignment (OAL): for every pair with p_i < p_j, the unit direction
  d_ij = normalize(f_j - f_i) of the raw (not normalised) projections is pulled towards a
  learnable direction u: L_OAL = -mean <d_ij, u / |u|>.
- s_ij the cosine similarity of the projections, temperature t = 0.1.

Both follow the authors' code (github haoyiwang25/CORAL, loss/contrast_loss.py, ``CORALLoss``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import Encoder


def ral_loss(z: torch.Tensor, p: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Relational ranking loss. z [M, D] (normalised inside), p [M] positions (float64 preferred)."""
    m = z.shape[0]
    if m < 2:
        return z.sum() * 0
    z = F.normalize(z, dim=1)
    s = z @ z.t() / temperature  # [M, M]
    dp = (p[:, None] - p[None, :]).abs()  # |p_i - p_k|, exact in float64
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    # mask[i, j, k] = k in the denominator of pair (i, j): k != i and |p_i - p_k| >= |p_i - p_j|
    mask = (dp[:, None, :] >= dp[:, :, None]) & ~eye[:, None, :]
    logits_ik = s[:, None, :].expand(m, m, m)
    neg_inf = torch.finfo(s.dtype).min
    log_den = torch.logsumexp(logits_ik.masked_fill(~mask, neg_inf), dim=2)  # [M(i), M(j)]
    l = log_den - s  # -log(exp(s_ij) / den)
    w = torch.sigmoid(dp.to(s.dtype))
    off = ~eye
    return (w * l)[off].mean()


def oal_loss(z: torch.Tensor, p: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Ordinal alignment loss: -mean over pairs p_i < p_j of cos(z_j - z_i, u), on the raw
    projections as the reference's ``_compute_oal_loss`` (normalising z first would measure
    directions on the sphere and change the gradients). In [-1, 1]; -1 when every step
    follows u."""
    u = F.normalize(direction, dim=0)
    i, j = torch.nonzero(p[:, None] < p[None, :], as_tuple=True)
    if i.numel() == 0:
        return z.sum() * 0 + direction.sum() * 0
    d = F.normalize(z[j] - z[i], dim=1)
    return -(d @ u).mean()


class CoralNet(nn.Module):
    """Encoder -> global average pool of the bottleneck -> 2-layer MLP projection; plus the
    learnable canonical direction u."""

    def __init__(self, in_channels: int, depth: int = 4, width: int = 32, norm: str = "batch", proj_dim: int = 64,
                 hidden: int = 256):
        super().__init__()
        self.encoder = Encoder(in_channels, depth, width, norm)
        c = self.encoder.channels[-1]
        self.projector = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim))
        self.direction = nn.Parameter(torch.randn(proj_dim))  # N(0, 1) as the reference's v_prog

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)[-1].mean((2, 3))
        return self.projector(f)


def coral_loss(z: torch.Tensor, p: torch.Tensor, direction: torch.Tensor, temperature: float = 0.1,
               oal_weight: float = 1.0):
    ral = ral_loss(z, p, temperature)
    oal = oal_loss(z, p, direction)
    return ral + oal_weight * oal, {"ral": float(ral.detach()), "oal": float(oal.detach())}


def two_views(image: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Two augmented views of a batch [B, C, H, W] -> [2B, C, H, W]: random resized crop
    (scale 0.7-1), random horizontal and vertical flips (p = 0.5 each, as in the reference's
    augmentations: an in-plane flip does not change a slice's position along the volume), random
    intensity scale/shift and Gaussian noise."""
    b, c, h, w = image.shape
    views = []
    for _ in range(2):
        scale = torch.empty(b).uniform_(0.7, 1.0, generator=generator)
        tx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - scale)
        ty = (torch.rand(b, generator=generator) * 2 - 1) * (1 - scale)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = scale, scale, tx, ty
        grid = F.affine_grid(theta.to(image.dtype), [b, c, h, w], align_corners=False).to(image.device)
        v = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        for axis in (-1, -2):
            flip = (torch.rand(b, generator=generator) < 0.5).to(image.device)
            v = torch.where(flip.view(b, 1, 1, 1), v.flip(axis), v)
        gain = torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2, generator=generator).to(image.device)
        bias = torch.empty(b, 1, 1, 1).uniform_(-0.2, 0.2, generator=generator).to(image.device)
        noise = torch.randn(v.shape, generator=generator).to(image.device) * 0.05
        views.append(v * gain + bias + noise)
    return torch.cat(views, 0)
