"""Loss and metric curves and prediction overlays as PNG (matplotlib, Agg backend)."""
from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=float) / 255


def _atomic_savefig(fig, path: str) -> None:
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def plot_curves(history: List[dict], out_dir: str) -> List[str]:
    """loss.png (train / validation loss per epoch) and metrics.png (Dice, HD95, ordinal metrics)."""
    paths = []
    if not history:
        return paths
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [h.get("train_loss") for h in history], "o-", label="train")
    # The trainer's history keeps the validation loss under h["val"]["loss"] (cv rows: "val_loss").
    val = [h.get("val_loss", (h.get("val") or {}).get("loss")) for h in history]
    if any(v is not None for v in val):
        ax.plot(ep, val, "s-", label="validation")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    p = os.path.join(out_dir, "loss.png")
    _atomic_savefig(fig, p)
    paths.append(p)

    units = next((h["val"].get("hd95_units") for h in history if h.get("val")), "px")
    panels = [("dice", "Dice per class", False), ("hd95", f"HD95 per class ({units})", False)]
    ordinal = any("contact_surface_error" in h.get("val", {}) for h in history)
    fig, axes = plt.subplots(1, 3 if ordinal else 2, figsize=(15 if ordinal else 10, 4))
    all_names: List[str] = []  # one colour per class across panels
    for h in history:
        for n in (h.get("val", {}).get("dice") or {}):
            if n not in all_names:
                all_names.append(n)
    for ax, (key, title, _) in zip(axes, panels):
        names = []
        for h in history:
            for n in (h.get("val", {}).get(key) or {}):
                if n not in names:
                    names.append(n)
        for n in names:
            ys = [(h.get("val", {}).get(key) or {}).get(n) for h in history]
            colour = f"C{all_names.index(n) % 10}" if n in all_names else None
            ax.plot(ep, [np.nan if y is None else y for y in ys], "o-", label=n, color=colour)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=8)
    if ordinal:
        ax = axes[2]
        for key, lab in (("contact_surface_error", "contact-surface error"), ("unimodal_share", "unimodal pixels (paper)"),
                         ("unimodal_share_ties", "unimodal pixels (ties allowed)")):
            ys = [h.get("val", {}).get(key) for h in history]
            ax.plot(ep, [np.nan if y is None else y for y in ys], "o-", label=lab)
        ax.set_title("Ordinal metrics")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    p = os.path.join(out_dir, "metrics.png")
    _atomic_savefig(fig, p)
    paths.append(p)
    return paths


def _display(image: np.ndarray) -> np.ndarray:
    """[C, H, W] -> something imshow shows: grey from channel 0, or RGB for 3 channels."""
    if image.shape[0] == 3:
        rgb = np.transpose(image, (1, 2, 0)).astype(float)
        lo, hi = np.percentile(rgb, 1), np.percentile(rgb, 99)
        return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)
    g = image[0].astype(float)
    lo, hi = np.percentile(g, 1), np.percentile(g, 99)
    return np.clip((g - lo) / max(hi - lo, 1e-6), 0, 1)


def plot_overlays(samples: Sequence[dict], num_classes: int, class_names: Sequence[str], path: str) -> str:
    """One row per sample: image, ground truth over the image, prediction over the image.
    Each sample: {'image': [C,H,W], 'label': [H,W], 'pred': [H,W], 'title': str}."""
    n = len(samples)
    cmap = ListedColormap(_PALETTE[np.arange(max(num_classes, 1)) % len(_PALETTE)])
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for r, s in enumerate(samples):
        disp = _display(s["image"])
        kw = {"cmap": "gray"} if disp.ndim == 2 else {}
        for c, (title, lab) in enumerate((("image", None), ("ground truth", s["label"]), ("prediction", s["pred"]))):
            ax = axes[r, c]
            ax.imshow(disp, **kw)
            if lab is not None:
                ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=max(num_classes - 1, 1), alpha=0.5,
                          interpolation="nearest")
            ax.set_title(f"{s.get('title', '')} {title}".strip(), fontsize=8)
            ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=_PALETTE[i % len(_PALETTE)]) for i in range(1, num_classes)]
    if handles:
        fig.legend(handles, list(class_names)[1:], loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    _atomic_savefig(fig, path)
    return path
