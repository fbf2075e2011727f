"""A 2D U-Net with configurable depth and width and optional deep-supervision heads."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalisation '{kind}' is unknown; expected batch, instance, group or none.")


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str = "batch"):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"), _norm(norm, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"), _norm(norm, cout), nn.ReLU(inplace=True),
        )


class Encoder(nn.Module):
    """depth+1 conv blocks; block i has width * 2**i channels, the last one is the bottleneck."""

    def __init__(self, in_channels: int, depth: int = 4, width: int = 32, norm: str = "batch"):
        super().__init__()
        self.depth = depth
        self.channels = [width * 2 ** i for i in range(depth + 1)]
        chans = [in_channels] + self.channels
        self.blocks = nn.ModuleList(ConvBlock(chans[i], chans[i + 1], norm) for i in range(depth + 1))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = []
        for i, b in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = b(x)
            feats.append(x)
        return feats  # feats[-1] is the bottleneck


class UNet2D(nn.Module):
    """U-Net (Ronneberger et al. 2015) for [B, C, H, W] -> logits [B, K, H, W].

    Any H, W: the input is padded to a multiple of 2**depth and the output cropped back.
    With ``deep_supervision`` the forward pass in training mode returns a list
    ``[logits, logits_s2, logits_s4, ...]`` (one per decoder level below full resolution, as many
    as ``ds_scales`` asks for), each ceil(H/s) x ceil(W/s), the size of medprep's maps at scale s. In eval mode it returns the full-resolution logits only.
    """

    def __init__(self, in_channels: int, num_classes: int, depth: int = 4, width: int = 32, norm: str = "batch",
                 deep_supervision: bool = False, ds_scales: Sequence[int] = (2, 4)):
        super().__init__()
        if depth < 1:
            raise ValueError(f"U-Net depth '{depth}' must be at least 1.")
        self.in_channels, self.num_classes, self.depth, self.width = in_channels, num_classes, depth, width
        self.encoder = Encoder(in_channels, depth, width, norm)
        ch = self.encoder.channels
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(depth, 0, -1):  # decoder level i -> i-1
            self.up.append(nn.ConvTranspose2d(ch[i], ch[i - 1], 2, stride=2))
            self.dec.append(ConvBlock(2 * ch[i - 1], ch[i - 1], norm))
        self.head = nn.Conv2d(ch[0], num_classes, 1)
        self.deep_supervision = deep_supervision
        # decoder output after step t (t = 0 .. depth-1) has stride 2**(depth-1-t)
        self.ds_scales = [s for s in ds_scales if s > 1 and s & (s - 1) == 0 and s < 2 ** depth] if deep_supervision else []
        self.ds_heads = nn.ModuleDict({str(s): nn.Conv2d(ch[s.bit_length() - 1], num_classes, 1) for s in self.ds_scales})

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        feats = self.encoder(x)
        y = feats[-1]
        side = {}
        for t, (up, dec) in enumerate(zip(self.up, self.dec)):
            skip = feats[self.depth - 1 - t]
            y = dec(torch.cat([up(y), skip], dim=1))
            stride = 2 ** (self.depth - 1 - t)
            if str(stride) in self.ds_heads and self.training:
                side[stride] = self.ds_heads[str(stride)](y)
        out = self.head(y)[..., :h, :w]
        if not (self.deep_supervision and self.training and side):
            return out
        outs = [out]
        for s in sorted(side):
            # the padded input is a multiple of s, so the stride-s map covers ceil(H/s) x ceil(W/s)
            # pixels whose centres sit where medprep samples label[::s, ::s]; crop the padding off.
            outs.append(side[s][..., : -(-h // s), : -(-w // s)])
        return outs


def build_unet(in_channels: int, num_classes: int, depth: int = 4, width: int = 32, norm: str = "batch",
               deep_supervision: bool = False, ds_scales: Sequence[int] = (2, 4)) -> UNet2D:
    return UNet2D(in_channels, num_classes, depth=depth, width=width, norm=norm, deep_supervision=deep_supervision,
                  ds_scales=ds_scales)


def load_encoder(model: UNet2D, state: dict, strict: bool = True) -> None:
    """Loads encoder weights (from CORAL pretraining) into a U-Net."""
    enc = {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in state.items()}
    model.encoder.load_state_dict(enc, strict=strict)
