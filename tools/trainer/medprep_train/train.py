"""`medprep-train`: trains a 2D U-Net on medprep shards (one fold), with optional CORAL pretraining.

Single process:   medprep-train --index OUT/index.json --fold 0 --loss ce+rrw --out runs/f0
Several (DDP):    torchrun --nproc_per_node 2 -m medprep_train.train --index ... --backend gloo --device cpu
Multi-node:       torchrun --nnodes N --node_rank R --master_addr HOST --nproc_per_node G -m medprep_train.train ...
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import sys
import time
import warnings
from typing import List, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from .dataset import MedprepDataset, MedprepIndex, MedprepIndexError, collate, parse_augment
from .losses import ALL_TERMS, CONTACT_COSTS, CONTACT_NORMS, EnvelopeConfig, LossConfig, Sched, SegLoss, parse_loss_spec
from .metrics import SegMetrics
from .model import build_unet, load_encoder
from .precision import AMP_MODES, Precision
from .sampling import EpochSampler, overlay_samples, spread_samples


def _int_list(s: Optional[str]) -> Optional[List[int]]:
    if s is None or s == "":
        return None
    return [int(x) for x in s.split(",") if x.strip()]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends every option's default to its help
    (except options whose default is 'not set' or off)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medprep-train", description=__doc__, formatter_class=_HelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--index", required=True, help="index.json written by 'medprep convert' (or its folder)")
    g.add_argument("--fold", type=int, default=0, help="validation fold; training uses the k-1 others")
    g.add_argument("--augment", default="flip,rot90",
                   help="comma-separated: flip, rot90, intensity (image only), affine, or none; every one is exact for "
                        "the maps: online maps (maps.storage: online) are computed from the augmented label, stored "
                        "maps follow flips and turns and are recomputed from the label where moving them would not "
                        "be exact (affine, coarse deep-supervision maps)")
    g.add_argument("--verify-checksums", action="store_true", help="check every shard's SHA-256 against the index first")
    g.add_argument("--workers", type=int, default=2, help="DataLoader worker processes per rank (the batches and losses do not depend on it)")
    g.add_argument("--val-max-samples", type=int, default=None, help="validate on at most this many slices, spread over every validation case at a constant stride per case")
    g = p.add_argument_group("model")
    g.add_argument("--depth", type=int, default=4, help="U-Net levels below full resolution")
    g.add_argument("--width", type=int, default=32, help="channels of the first level, doubled per level")
    g.add_argument("--norm", default="batch", choices=["batch", "instance", "group", "none"], help="normalisation layers")
    g.add_argument("--deep-supervision", action="store_true",
                   help="extra heads at the index's map scales > 1 (uses the sdf_s{s} / rrw_s{s} maps)")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", default="ce", help=f"terms joined by '+', optionally weighted ('0.5*dice'); terms: {', '.join(ALL_TERMS)}")
    g.add_argument("--schedule", default="none", choices=["none", "gradual", "kervadec"],
                   help="moves weight from region terms (ce, dice, cdc, ordinal) to map terms (boundary, rrw) over epochs: "
                        "gradual = Valverde & Tohka alpha = max((100-e)/100, 0.01); kervadec = Kervadec et al.'s +0.01/epoch")
    g.add_argument("--gradual-epochs", type=float, default=100.0, help="the 100 in the gradual schedule")
    g.add_argument("--boundary-classes", default=None, help="classes of the boundary loss (default 1..K-1)")
    g.add_argument("--dice-classes", default=None, help="classes of dice/cdc (default: all for dice, 1..K-1 for cdc)")
    g.add_argument("--ordinal-lambda", type=float, default=None, help="lambda of CE + lambda*term for qul/emse/co2/contact")
    g.add_argument("--ordinal-margin", type=float, default=0.05, help="margin of the qul and co2 terms")
    g.add_argument("--contact-cost", default="distance", choices=list(CONTACT_COSTS),
                   help="cost of neighbours k, l more than one step apart: |k-l| - 1 (distance, the reference's) or 1 (binary)")
    g.add_argument("--contact-norm", default="pairs", choices=list(CONTACT_NORMS),
                   help="divide the contact penalty by the (K-1)(K-2) class pairs it sums (pairs, the reference's) or not (none)")
    g.add_argument("--envelope", default="none", choices=["none", "topk"], help="Top-k / bottom-all-but-sigma envelope")
    g.add_argument("--topk-sigma", type=float, default=1.0, help="pixels above mean + sigma*std are dropped")
    g.add_argument("--topk-pixel", default="hard", choices=["hard", "sigmoid"], help="pixel weights: 0/1 or sigmoid")
    g.add_argument("--topk-pixel-tau", default="0.1", help="pixel sigmoid temperature (w = sigmoid((t - l) / tau); the "
                   "paper's sharpness is 1 / tau), 'V' or 'START:END' over epochs")
    g.add_argument("--topk-k", default="1.0", help="images emphasised: a fraction of the batch (<= 1; 1 = all) or a count (> 1); 'V' or 'START:END' over epochs")
    g.add_argument("--topk-image", default="sigmoid", choices=["hard", "sigmoid"], help="image weights: 0/1 or sigmoid")
    g.add_argument("--topk-tau", default="0.1", help="image sigmoid temperature (the paper's sharpness is 1 / tau), "
                   "'V' or 'START:END' over epochs")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=50, help="training epochs")
    g.add_argument("--amp", default="none", choices=list(AMP_MODES),
                   help="mixed precision: bf16 autocast (CPU and CUDA) or fp16 autocast with a gradient scaler (CUDA); "
                        "losses and metrics are computed in float32")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format for the model and its inputs")
    g.add_argument("--iters-per-epoch", type=int, default=None, help="stop an epoch after this many batches")
    g.add_argument("--batch-size", type=int, default=8, help="per rank")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--weight-decay", type=float, default=1e-5, help="Adam weight decay")
    g.add_argument("--seed", type=int, default=0, help="model initialisation, shuffling and augmentation draws")
    g.add_argument("--val-every", type=int, default=1, help="validate every N epochs (and after the last)")
    g.add_argument("--resume", default=None, help="checkpoint.pt to continue from")
    g = p.add_argument_group("CORAL pretraining")
    g.add_argument("--coral-epochs", type=int, default=0, help="pretrain the encoder with CORAL for N epochs first")
    g.add_argument("--coral-iters-per-epoch", type=int, default=None, help="stop a CORAL epoch after this many batches")
    g.add_argument("--coral-lr", type=float, default=1e-3, help="Adam learning rate of the pretraining")
    g.add_argument("--coral-temperature", type=float, default=0.1, help="temperature of the relational ranking loss")
    g.add_argument("--coral-oal-weight", type=float, default=1.0, help="weight of the ordinal alignment loss")
    g.add_argument("--pretrained-encoder", default=None, help="encoder weights (coral_encoder.pt) to start from")
    g = p.add_argument_group("validation")
    g.add_argument("--hd95-units", default="mm", choices=["mm", "px"],
                   help="HD95 in mm (the processed spacing index.json records per case) or in voxels of the shard grid")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=None, help="output folder (default runs/fold<F>)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    g.add_argument("--backend", default=None, help="torch.distributed backend under torchrun: gloo (CPU) or nccl (default by device)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads per rank")
    g.add_argument("--overlays", type=int, default=4, help="prediction overlays to draw (0: none)")
    g.add_argument("--no-plots", action="store_true")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--demo", action="store_true",
                   help="the demo's run: about a minute on 2 CPU cores (12 epochs, width 16, depth 3, lr 3e-3), long "
                        "enough to segment the synthetic data; prints the final Dice and where the curves and overlays are")
    g.add_argument("--demo-quick", action="store_true",
                   help="a smoke run with a tiny model (2 epochs of 3 batches, width 8, depth 3)")
    return p


def _apply_demo(a: argparse.Namespace) -> None:
    """The --demo / --demo-quick presets; options the user gave keep their values."""
    quick = a.demo_quick
    a.epochs = (2 if quick else 12) if a.epochs == 50 else a.epochs
    a.lr = 3e-3 if a.lr == 1e-3 and not quick else a.lr
    a.iters_per_epoch = a.iters_per_epoch or (3 if quick else None)
    a.width = (8 if quick else 16) if a.width == 32 else a.width
    a.depth = 3 if a.depth == 4 else a.depth
    a.batch_size = 4 if a.batch_size == 8 and quick else a.batch_size
    a.val_max_samples = a.val_max_samples or (24 if quick else None)
    a.workers = (0 if quick else 1) if a.workers == 2 else a.workers


def required_maps(spec: str, index: MedprepIndex) -> List[str]:
    """The maps a loss spec needs ('sdf' for boundary, 'rrw' for rrw); raises when the index has none."""
    terms = [t for t, _ in parse_loss_spec(spec)]
    maps = [m for m, need in (("sdf", "boundary" in terms), ("rrw", "rrw" in terms)) if need]
    for m in maps:
        if not index.maps.get(m):
            raise MedprepIndexError(f"loss '{spec}' needs the '{m}' maps but index '{index.path}' has none (maps.{m} is false).")
    return maps


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_save(obj, path: str) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Dist:
    def __init__(self, backend: Optional[str], device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_arg == "auto":
            device_arg = "cuda" if torch.cuda.is_available() else "cpu"
        if device_arg == "cuda" and self.world > 1:
            device_arg = f"cuda:{self.local_rank}"
        self.device = torch.device(device_arg)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.enabled = self.world > 1
        if self.enabled and not dist.is_initialized():
            backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
            # rank 0 validates while the others wait at a barrier: allow long validations
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def mean(self, x: float) -> float:
        if not self.enabled:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _to(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _loader(ds, batch_size, shuffle, workers, d: Dist, seed: int, drop_last=False):
    """A DataLoader whose batches depend only on (seed, epoch): see `EpochSampler`."""
    sampler = EpochSampler(ds, shuffle=shuffle, seed=seed, world=d.world, rank=d.rank)
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
                      persistent_workers=workers > 0, generator=g, pin_memory=d.device.type == "cuda",
                      collate_fn=collate), sampler


def _bar(it, total, desc, enabled):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def coral_pretrain(a, d: Dist, index: MedprepIndex, train_samples, in_ch: int, out_dir: str, log, prec: Precision) -> dict:
    """CORAL pretraining of the encoder; returns the encoder state dict (also saved)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    from .coral import CoralNet, coral_loss, two_views

    ds = MedprepDataset(index, train_samples, maps=(), augment="none", seed=a.seed)
    loader, sampler = _loader(ds, a.batch_size, True, a.workers, d, a.seed, drop_last=len(ds) > a.batch_size * d.world)
    net = prec.model(CoralNet(in_ch, depth=a.depth, width=a.width, norm=a.norm).to(d.device))
    model = DDP(net) if d.enabled else net
    opt = torch.optim.Adam(model.parameters(), lr=a.coral_lr, weight_decay=a.weight_decay)
    gen = torch.Generator()
    gen.manual_seed(a.seed * 1000 + d.rank)
    hist = []
    for ep in range(a.coral_epochs):
        sampler.set_epoch(ep)
        model.train()
        total, n = 0.0, 0
        nb = len(loader) if a.coral_iters_per_epoch is None else min(len(loader), a.coral_iters_per_epoch)
        for it, batch in enumerate(_bar(loader, nb, f"CORAL {ep + 1}/{a.coral_epochs}", d.main and not a.no_progress)):
            if it >= nb:
                break
            x = batch["image"].to(d.device)
            p = batch["position"].to(d.device)
            views = prec.input(two_views(x, gen))
            with prec.autocast():
                z = model(views)
            loss, comps = coral_loss(z.float(), torch.cat([p, p]), net.direction, a.coral_temperature, a.coral_oal_weight)
            opt.zero_grad(set_to_none=True)
            prec.step(loss, opt)
            total += float(loss.detach())
            n += 1
        mean = d.mean(total / max(n, 1))
        hist.append({"epoch": ep, "coral_loss": mean})
        log(f"CORAL epoch {ep + 1}/{a.coral_epochs}: loss {mean:.4f}")
    state = {k: v.detach().cpu() for k, v in net.encoder.state_dict().items()}
    if d.main:
        _atomic_save({"encoder": state, "config": {"depth": a.depth, "width": a.width, "norm": a.norm, "in_channels": in_ch},
                      "history": hist}, os.path.join(out_dir, "coral_encoder.pt"))
    return state


@torch.no_grad()
def validate(model, loader, loss_fn: SegLoss, index: MedprepIndex, d: Dist, epoch: int, epochs: int, a,
             prec: Precision, overlay_ids=()):
    """Loss and metrics over the validation loader; `overlay_ids` are the samples to draw."""
    model.eval()
    ordinal = index.ordinal
    met = SegMetrics(index.num_classes, ordinal=ordinal, ranks=index.ordinal_ranks() if ordinal else None,
                     class_names=index.class_names, case_spacing=index.case_geometry if a.hd95_units == "mm" else None)
    total, n = 0.0, 0
    wanted = {int(s) for s in overlay_ids}
    picks = {}
    for batch in _bar(loader, len(loader), "validate", d.main and not a.no_progress):
        batch = _to(batch, d.device)
        with prec.autocast():
            logits = model(prec.input(batch["image"]))
        logits = Precision.float32(logits)
        loss, _ = loss_fn(logits, batch, epoch, epochs)
        total += float(loss) * logits.shape[0]
        n += logits.shape[0]
        probs = torch.softmax(logits, 1)
        met.update(probs, batch["label"], batch["case_index"].tolist(), batch["slice_index"].tolist())
        pred = probs.argmax(1)
        for b, sample in enumerate(batch["sample"].tolist()):
            if sample in wanted:
                cid = int(batch["case_index"][b])
                picks[sample] = {"image": batch["image"][b].cpu().numpy(), "label": batch["label"][b].cpu().numpy(),
                                 "pred": pred[b].cpu().numpy(),
                                 "title": f"{index.cases[cid]['id']} slice {int(batch['slice_index'][b])}"}
    out = met.compute()
    out["loss"] = total / max(n, 1)
    return out, [picks[s] for s in sorted(picks)]


def _csv_row(h: dict, names: List[str], ordinal: bool) -> dict:
    v = h.get("val") or {}
    row = {"epoch": h["epoch"], "train_loss": h["train_loss"], "val_loss": v.get("loss"),
           "mean_dice": v.get("mean_dice"), "mean_hd95": v.get("mean_hd95")}
    for n in names:
        row[f"dice_{n}"] = (v.get("dice") or {}).get(n)
    for n in names[1:]:
        row[f"hd95_{n}"] = (v.get("hd95") or {}).get(n)
    if ordinal:
        row["contact_surface_error"] = v.get("contact_surface_error")
        row["unimodal_share"] = v.get("unimodal_share")
        row["unimodal_share_ties"] = v.get("unimodal_share_ties")
    row["lr"] = h.get("lr")
    row["seconds"] = h.get("seconds")
    return row


def final_summary(final: dict, epochs: int) -> str:
    """One line a person reads at the end: mean and per-class Dice, HD95 with its unit, ordinal metrics."""
    def f(v):
        return "n/a" if v is None else f"{v:.4f}"
    per = ", ".join(f"{n} {f(v)}" for n, v in (final.get("dice") or {}).items())
    line = f"final validation after {epochs} epoch(s): mean Dice {f(final.get('mean_dice'))} ({per})"
    if final.get("mean_hd95") is not None:
        line += f"; mean HD95 {final['mean_hd95']:.2f} {final.get('hd95_units', 'px')}"
    if "contact_surface_error" in final:
        line += f"; contact-surface error {f(final['contact_surface_error'])}, unimodal {f(final.get('unimodal_share'))}"
    return line


def write_metrics(out_dir: str, history: List[dict], final: dict, names: List[str], ordinal: bool) -> None:
    _atomic_write(os.path.join(out_dir, "metrics.json"), json.dumps({"final": final, "history": history}, indent=2) + "\n")
    rows = [_csv_row(h, names, ordinal) for h in history]
    if rows:
        tmp = os.path.join(out_dir, "metrics.csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        os.replace(tmp, os.path.join(out_dir, "metrics.csv"))


def run(a: argparse.Namespace) -> dict:
    if a.demo or a.demo_quick:
        _apply_demo(a)
    d = Dist(a.backend, a.device)
    prec = Precision(a.amp, d.device, a.channels_last)
    if d.device.type == "cpu":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(d.world)))
        torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // max(local_world, 1)))
    torch.manual_seed(a.seed + d.rank)
    np.random.seed(a.seed + d.rank)
    log = (lambda m: print(m, flush=True)) if d.main else (lambda m: None)
    out_dir = a.out or os.path.join("runs", f"fold{a.fold}")
    if d.main:
        os.makedirs(out_dir, exist_ok=True)
    d.barrier()
    try:
        index = MedprepIndex.load(a.index)
        if a.verify_checksums:
            if d.main:
                index.verify_checksums()
                log(f"checksums: {len(index.shards)} shard(s) match {index.path}")
            d.barrier()
        train_s, val_s = index.fold_split(a.fold)
        if len(train_s) == 0:
            raise MedprepIndexError(f"fold '{a.fold}' leaves no training slices in '{index.path}' (k = {index.folds_k}).")
        if a.val_max_samples is not None and len(val_s) > a.val_max_samples:
            val_s = spread_samples(index, val_s, a.val_max_samples)
        if a.hd95_units == "mm" and not index.records_slice_step:
            warnings.warn(f"index '{index.path}' does not record slice_step_mm (convert it again with this medprep); "
                          "HD95 is reported in voxels.")
            a.hd95_units = "px"
        terms = [t for t, _ in parse_loss_spec(a.loss)]
        maps = required_maps(a.loss, index)
        ds_scales = [s for s in index.scales if s > 1] if a.deep_supervision else []
        scales = [1] + ds_scales
        parse_augment(a.augment)
        train_ds = MedprepDataset(index, train_s, maps=maps, scales=scales, augment=a.augment, seed=a.seed)
        val_ds = MedprepDataset(index, val_s, maps=maps, scales=[1], augment="none", seed=a.seed)
        in_ch = int(train_ds.raw(0)["image"].shape[0])
        k = index.num_classes
        envelope = None
        if a.envelope == "topk":
            envelope = EnvelopeConfig(sigma=a.topk_sigma, pixel_smooth=a.topk_pixel, pixel_tau=Sched.parse(a.topk_pixel_tau),
                                      k=Sched.parse(a.topk_k), image_smooth=a.topk_image, image_tau=Sched.parse(a.topk_tau))
        lcfg = LossConfig(spec=a.loss, schedule=a.schedule, gradual_epochs=a.gradual_epochs,
                          boundary_classes=_int_list(a.boundary_classes), dice_classes=_int_list(a.dice_classes),
                          ordinal_lambda=a.ordinal_lambda, ordinal_margin=a.ordinal_margin,
                          contact_cost=a.contact_cost, contact_norm=a.contact_norm,
                          ranks=index.ordinal_ranks(), envelope=envelope)
        loss_fn = SegLoss(lcfg)
        val_loss_fn = SegLoss(LossConfig(**{**lcfg.__dict__, "envelope": None}))
        if any(t in terms for t in ("qul", "emse", "co2", "contact")) and not index.ordinal:
            warnings.warn(f"ordinal loss terms on index '{index.path}', which is not marked ordinal; class order is used as rank.")

        log(f"medprep-train: {index.raw.get('dataset', {}).get('name', '?')} fold {a.fold}/{index.folds_k}: "
            f"{len(train_ds)} training and {len(val_ds)} validation slices of {train_ds.shape_hw[0]}x{train_ds.shape_hw[1]}, "
            f"{in_ch} channel(s), {k} classes; loss {a.loss}; device {d.device}, world size {d.world}")

        model = prec.model(build_unet(in_ch, k, depth=a.depth, width=a.width, norm=a.norm,
                                      deep_supervision=a.deep_supervision, ds_scales=ds_scales).to(d.device))
        if a.coral_epochs > 0:
            state = coral_pretrain(a, d, index, train_s, in_ch, out_dir, log, prec)
            load_encoder(model, {k_: v.to(d.device) for k_, v in state.items()})
            log("fine-tuning the U-Net from the CORAL-pretrained encoder")
        elif a.pretrained_encoder:
            ck = torch.load(a.pretrained_encoder, map_location=d.device, weights_only=False)
            load_encoder(model, ck["encoder"] if "encoder" in ck else ck)
            log(f"encoder loaded from {a.pretrained_encoder}")
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        start_epoch, history, best = 0, [], None
        if a.resume:
            ck = torch.load(a.resume, map_location=d.device, weights_only=False)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            start_epoch, history, best = ck["epoch"] + 1, ck.get("history", []), ck.get("best")
        if d.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ddp = DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        else:
            ddp = model
        drop = len(train_ds) > a.batch_size * d.world
        train_loader, sampler = _loader(train_ds, a.batch_size, True, a.workers, d, a.seed, drop_last=drop)
        val_loader = None
        overlay_ids = []
        if d.main and len(val_ds):
            val_loader = DataLoader(val_ds, batch_size=a.batch_size, shuffle=False, num_workers=min(a.workers, 1),
                                    collate_fn=collate)
            if a.overlays > 0 and not a.no_plots:
                overlay_ids = overlay_samples(index, val_ds.samples, a.overlays, val_ds.label_of)
        iters_done, samples_done = 0, 0
        final = {}
        overlay_path = None
        for ep in range(start_epoch, a.epochs):
            t0 = time.time()
            sampler.set_epoch(ep)
            train_ds.set_epoch(ep)
            ddp.train()
            nb = len(train_loader) if a.iters_per_epoch is None else min(len(train_loader), a.iters_per_epoch)
            tot, n, seen = 0.0, 0, 0
            bar = _bar(train_loader, nb, f"epoch {ep + 1}/{a.epochs}", d.main and not a.no_progress)
            for it, batch in enumerate(bar):
                if it >= nb:
                    break
                batch = _to(batch, d.device)
                with prec.autocast():
                    out = ddp(prec.input(batch["image"]))
                loss, comps = loss_fn(Precision.float32(out), batch, ep, a.epochs)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss '{a.loss}' became {float(loss)} at epoch {ep}, batch {it}.")
                opt.zero_grad(set_to_none=True)
                prec.step(loss, opt)
                tot += float(loss.detach())
                n += 1
                iters_done += 1
                samples_done += int(batch["image"].shape[0])
                seen += int(batch["image"].shape[0])
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            train_loss = d.mean(tot / max(n, 1))
            train_s = time.time() - t0
            h = {"epoch": ep, "train_loss": train_loss, "lr": opt.param_groups[0]["lr"],
                 "weights": dict(loss_fn.weights(ep)),
                 "train_samples_per_s": seen * d.world / train_s if train_s > 0 else None}
            do_val = ((ep + 1) % a.val_every == 0) or ep == a.epochs - 1
            if d.main and do_val and val_loader is not None:
                val, picks = validate(model, val_loader, val_loss_fn, index, d, ep, a.epochs, a,
                                      prec, overlay_ids if ep == a.epochs - 1 else ())
                h["val"] = val
                final = val
                if picks:
                    from .plots import plot_overlays
                    overlay_path = plot_overlays(picks, k, index.class_names, os.path.join(out_dir, "overlays.png"))
                score = val.get("mean_dice")
                if score is not None and (best is None or score > best["mean_dice"]):
                    best = {"epoch": ep, "mean_dice": score}
                    _atomic_save({"model": model.state_dict(), "epoch": ep, "metrics": val}, os.path.join(out_dir, "best.pt"))
            h["seconds"] = time.time() - t0
            history.append(h)
            if d.main:
                vs = h.get("val") or {}
                extra = ""
                if vs:
                    extra = f", val loss {vs['loss']:.4f}, mean Dice {vs.get('mean_dice') if vs.get('mean_dice') is None else round(vs['mean_dice'], 4)}"
                    if "contact_surface_error" in vs:
                        extra += f", contact-surface error {vs['contact_surface_error']:.4f}, unimodal {vs['unimodal_share']:.4f}"
                log(f"epoch {ep + 1}/{a.epochs}: train loss {train_loss:.4f}{extra} ({h['seconds']:.1f} s)")
                _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": ep, "history": history,
                              "best": best, "config": vars(a), "classes": index.class_names, "in_channels": in_ch,
                              "num_classes": k}, os.path.join(out_dir, "checkpoint.pt"))
                write_metrics(out_dir, history, final, index.class_names, index.ordinal)
            d.barrier()
        result = {"out": out_dir, "final": final, "best": best, "rank": d.rank, "world_size": d.world,
                  "iterations": iters_done, "samples": samples_done}
        os.makedirs(os.path.join(out_dir, "ranks"), exist_ok=True)
        _atomic_write(os.path.join(out_dir, "ranks", f"rank-{d.rank}.json"),
                      json.dumps({k_: result[k_] for k_ in ("rank", "world_size", "iterations", "samples")}) + "\n")
        if d.main:
            paths = [] if a.no_plots else __import__("medprep_train.plots", fromlist=["plot_curves"]).plot_curves(history, out_dir)
            write_metrics(out_dir, history, final, index.class_names, index.ordinal)
            result["curves"] = paths
            result["overlays"] = overlay_path
            if final:
                log(final_summary(final, len(history)))
            log(f"checkpoint: {os.path.join(out_dir, 'checkpoint.pt')}")
            log(f"metrics: {os.path.join(out_dir, 'metrics.json')} and {os.path.join(out_dir, 'metrics.csv')}")
            if paths:
                log(f"curves: {', '.join(paths)}")
            if overlay_path:
                log(f"overlays: {overlay_path}")
        d.barrier()
        return result
    finally:
        d.close()


def main(argv: Optional[List[str]] = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        run(a)
    except (MedprepIndexError, ValueError) as e:
        print(f"medprep-train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
