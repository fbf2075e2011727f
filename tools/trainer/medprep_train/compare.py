"""`medprep-train-compare`: trains several losses on the same folds and tabulates them.

For every loss in --losses and every fold in --folds it runs `medprep-train` in
OUT/<loss-slug>/fold<f> with the same seed, data, model and schedule (only --loss differs), then
writes OUT/comparison.json, .csv, .md and .png: per loss, the mean and standard deviation over the
folds of the final validation metrics (mean Dice, mean HD95 and, on ordinal indexes, the
contact-surface error and the unimodal share). Every other option is passed to medprep-train
unchanged (its --no-plots only turns off the per-run curves; comparison.png is always drawn).

    medprep-train-compare --index OUT/index.json --losses "ce;contact;qul;co2;ce+rrw" \\
        --folds all --epochs 20 --out runs/compare

Loss specs are separated by ';' or ',' (neither can occur inside a spec), or given as repeated
--loss options. The ordinal terms qul, co2, emse and contact already include CE (CE + λ·term), so
compare `ce` with `contact`, not with `ce+contact` (which counts CE twice).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

from .cv import _flat, summarise
from .dataset import MedprepIndex, MedprepIndexError
from .losses import parse_loss_spec
from .train import _atomic_write, build_parser, required_maps, run

DEFAULT_LOSSES = "ce;contact;qul;co2"

# Headline metrics of the table and the plot, in order; a metric no run reports is left out.
# (key, label, lower is better)
METRICS: List[Tuple[str, str, bool]] = [
    ("mean_dice", "mean Dice", False),
    ("mean_hd95", "mean HD95", True),
    ("contact_surface_error", "contact-surface error", True),
    ("unimodal_share", "unimodal share (paper)", False),
    ("unimodal_share_ties", "unimodal share (ties)", False),
]

_NOT_METRICS = ("cases", "loss")  # scalar entries of "final" that are not per-loss metrics


class CompareError(ValueError):
    """A bad option of medprep-train-compare (reported as one line, exit status 2)."""


# ---------------------------------------------------------------------------------------------
# Options


def split_losses(text: Optional[str], repeated: Optional[List[str]]) -> List[str]:
    """'ce;contact, qul' plus repeated --loss values -> ['ce', 'contact', 'qul'], each checked."""
    specs = [s.strip() for s in re.split(r"[;,]", text or "") if s.strip()] + [s.strip() for s in repeated or []]
    if not specs:
        raise CompareError("no loss to compare; give --losses 'ce;contact' or repeated --loss options.")
    for s in specs:
        try:
            parse_loss_spec(s)
        except ValueError as e:
            raise CompareError(f"loss '{s}': {e}") from None
    return specs


def slug(spec: str) -> str:
    """A folder name for a loss spec: '0.5*dice+boundary' -> '0.5xdice+boundary'."""
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", spec.replace(" ", "").replace("*", "x"))


def unique_slugs(specs: List[str]) -> Dict[str, str]:
    """spec -> slug, refusing two specs that would share a run folder."""
    out: Dict[str, str] = {}
    for s in specs:
        sl = slug(s)
        clash = [o for o, v in out.items() if v == sl]
        if clash:
            raise CompareError(f"losses '{clash[0]}' and '{s}' would both run in folder '{sl}'; give each loss once.")
        out[s] = sl
    return out


def parse_folds(text: str, k: int, index_path: str) -> List[int]:
    """'all' or '0,2' -> fold numbers, each in 0 ..< k."""
    if text == "all":
        return list(range(k))
    try:
        folds = [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise CompareError(f"--folds '{text}' is not 'all' or a comma-separated list of fold numbers.") from None
    bad = [f for f in folds if not 0 <= f < k]
    if not folds or bad:
        raise CompareError(f"--folds '{text}' is out of range for index '{index_path}' with k = {k} folds (0 ..< {k}).")
    return folds


def check_maps(specs: List[str], index: MedprepIndex) -> None:
    """Fail before any training when a loss needs maps the index lacks (train.run would fail later)."""
    for s in specs:
        try:
            required_maps(s, index)
        except MedprepIndexError as e:
            raise CompareError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# Summary


def _stat(vals: List[float]) -> dict:
    return {"mean": float(np.mean(vals)) if vals else None, "std": float(np.std(vals)) if vals else None,
            "folds": len(vals)}


def _extra_keys(per_fold: Dict[int, dict], have: List[str]) -> List[str]:
    """Scalar final metrics that cv._flat does not copy."""
    keys: List[str] = []
    for r in per_fold.values():
        keys += [k for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and k not in have and k not in keys and k not in _NOT_METRICS]
    return keys


def summarise_loss(per_fold: Dict[int, dict]) -> dict:
    """cv.summarise over one loss's folds, plus the scalar final metrics cv._flat does not copy."""
    s = summarise(per_fold)
    for key in _extra_keys(per_fold, s["columns"]):
        vals = {f: r[key] for f, r in per_fold.items() if r.get(key) is not None}
        if not vals:
            continue
        for f, v in vals.items():
            s["folds"][str(f)][key] = v
        s["columns"].append(key)
        s["summary"][key] = _stat(list(vals.values()))
    return s


def present_metrics(losses: List[dict]) -> List[Tuple[str, str, bool]]:
    return [m for m in METRICS if any((l["summary"].get(m[0]) or {}).get("mean") is not None for l in losses)]


def _hd95_units(per_fold: Dict[int, dict]) -> Optional[str]:
    """The folds' common HD95 unit ('mm' or 'px', from metrics.json's hd95_units), else None."""
    units = {r.get("hd95_units") for r in per_fold.values()}
    return units.pop() if len(units) == 1 else None


def _label(key: str, label: str, losses: List[dict]) -> str:
    units = {l.get("hd95_units") for l in losses}
    if key == "mean_hd95" and len(units) == 1 and None not in units:
        return f"{label} ({units.pop()})"
    return label


def _ms(st: Optional[dict]) -> str:
    if not st or st.get("mean") is None or math.isnan(st["mean"]):
        return "-"
    return f"{st['mean']:.4f} ± {st['std']:.4f}"


def markdown(losses: List[dict]) -> str:
    mets = present_metrics(losses)
    lines = ["| loss | folds | " + " | ".join(f"{_label(k, lab, losses)} {'↓' if low else '↑'}" for k, lab, low in mets) + " |",
             "|---|---:|" + "---:|" * len(mets)]
    for l in losses:
        lines.append(f"| `{l['loss']}` | {len(l['folds'])} | " + " | ".join(_ms(l["summary"].get(k)) for k, _, _ in mets) + " |")
    return "\n".join(lines) + "\n"


def _csv_columns(losses: List[dict]) -> List[str]:
    cols: List[str] = []
    for l in losses:
        cols += [c for c in l["columns"] if c not in cols]
    return cols


def write_csv(path: str, losses: List[dict]) -> None:
    cols = _csv_columns(losses)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["loss", "slug", "folds"] + [f"{c}_{s}" for c in cols for s in ("mean", "std")])
        for l in losses:
            st = l["summary"]
            vals = [(st.get(c) or {}).get(s) for c in cols for s in ("mean", "std")]
            w.writerow([l["loss"], l["slug"], len(l["folds"])] + ["" if v is None else v for v in vals])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_plot(path: str, losses: List[dict]) -> None:
    """One panel per headline metric, one bar per loss, the standard deviation over folds as error bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mets = present_metrics(losses) or METRICS[:1]
    fig, axes = plt.subplots(1, len(mets), figsize=(3.2 * len(mets), 3.6), squeeze=False)
    names = [l["loss"] for l in losses]
    for ax, (key, label, low) in zip(axes[0], mets):
        sts = [l["summary"].get(key) or {} for l in losses]
        means = [np.nan if s.get("mean") is None else s["mean"] for s in sts]
        stds = [0.0 if s.get("std") is None else s["std"] for s in sts]
        ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=[f"C{i % 10}" for i in range(len(names))])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{_label(key, label, losses)}, {'lower' if low else 'higher'} is better", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = path + ".tmp"
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_outputs(out: str, report: dict) -> Tuple[str, Dict[str, str]]:
    paths = {ext: os.path.join(out, f"comparison.{ext}") for ext in ("md", "csv", "json", "png")}
    table = markdown(report["losses"])
    _atomic_write(paths["json"], json.dumps(report, indent=2) + "\n")
    write_csv(paths["csv"], report["losses"])
    _atomic_write(paths["md"], table)
    write_plot(paths["png"], report["losses"])
    return table, paths


# ---------------------------------------------------------------------------------------------
# Driver


def _pre_parser() -> argparse.ArgumentParser:
    # allow_abbrev off: "--fold" must not be read as our "--folds", nor "--los" as "--losses".
    pre = argparse.ArgumentParser(prog="medprep-train-compare", description=__doc__, add_help=False,
                                  formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    pre.add_argument("--losses", default=None, help=f"loss specs separated by ';' or ',' (default '{DEFAULT_LOSSES}')")
    pre.add_argument("--loss", action="append", default=None, help="one loss spec; repeat to add more")
    pre.add_argument("--folds", default="all", help="comma-separated folds or 'all' (default)")
    pre.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    pre.add_argument("-h", "--help", action="store_true")
    return pre


def compare(slugs: Dict[str, str], folds: List[int], rest: List[str], out: str) -> dict:
    """Runs every (loss, fold) and returns the report written to comparison.json."""
    train_parser = build_parser()
    specs = list(slugs)
    losses, rank = [], 0
    n, total = 0, len(specs) * len(folds)
    for s in specs:
        per_fold = {}
        for f in folds:
            n += 1
            run_out = os.path.join(out, slugs[s], f"fold{f}")
            print(f"== loss {s}, fold {f} ({n}/{total})", flush=True)
            a = train_parser.parse_args(rest + ["--fold", str(f), "--loss", s, "--out", run_out])
            res = run(a)
            rank = res.get("rank", 0)
            per_fold[f] = res.get("final") or {}
        losses.append({"loss": s, "slug": slugs[s], "out": os.path.join(out, slugs[s]),
                       "hd95_units": _hd95_units(per_fold), **summarise_loss(per_fold)})
    return {"folds": folds, "passed_options": rest, "losses": losses, "rank": rank}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mine, rest = _pre_parser().parse_known_args(argv)
    rest = [r for r in rest if r != "--"]
    if mine.help:
        _pre_parser().print_help()
        print("\nmedprep-train options (passed through):\n")
        build_parser().print_help()
        return 0
    try:
        if any(r == "--fold" or r.startswith("--fold=") for r in rest):
            raise CompareError("--fold is set per run; choose the folds with --folds (e.g. --folds 0,2).")
        specs = split_losses(mine.losses if (mine.losses or mine.loss) else DEFAULT_LOSSES, mine.loss)
        base = build_parser().parse_args(rest)
        index = MedprepIndex.load(base.index)
        folds = parse_folds(mine.folds, index.folds_k, index.path)
        check_maps(specs, index)
        slugs = unique_slugs(specs)
        os.makedirs(mine.out, exist_ok=True)
        report = {"index": index.path, **compare(slugs, folds, rest, mine.out)}
    except (MedprepIndexError, ValueError) as e:
        print(f"medprep-train-compare: error: {e}", file=sys.stderr)
        return 2
    if report.pop("rank"):  # under torchrun only rank 0 holds the validation metrics
        return 0
    table, paths = write_outputs(mine.out, report)
    print(table)
    print(f"comparison: {paths['md']}, {paths['csv']}, {paths['json']}, {paths['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
