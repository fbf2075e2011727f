"""`medprep-train-cv`: k-fold cross-validation driver.

Runs `medprep-train` once per fold (fold f validates on f and trains on the k-1 others), each in
OUT/fold<f>, then writes OUT/summary.json, OUT/summary.csv and OUT/summary.md: per fold the final
validation metrics and, over the folds, their mean and standard deviation. Every option other than
--folds and --out is passed to medprep-train unchanged.

    medprep-train-cv --index OUT/index.json --loss ce+rrw --epochs 50 --out runs/cv
    medprep-train-cv --index OUT/index.json --folds 0,2 --out runs/cv -- --demo-quick
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from typing import Dict, List, Optional

import numpy as np

from .dataset import MedprepIndex
from .train import _atomic_write, build_parser, run


def _flat(final: dict) -> Dict[str, Optional[float]]:
    row = {"mean_dice": final.get("mean_dice"), "mean_hd95": final.get("mean_hd95")}
    for n, v in (final.get("dice") or {}).items():
        row[f"dice_{n}"] = v
    for n, v in (final.get("hd95") or {}).items():
        row[f"hd95_{n}"] = v
    for key in ("contact_surface_error", "unimodal_share", "unimodal_share_ties", "loss"):
        if key in final:
            row["val_loss" if key == "loss" else key] = final[key]
    return row


def summarise(per_fold: Dict[int, dict]) -> dict:
    rows = {f: _flat(r) for f, r in per_fold.items()}
    keys: List[str] = []
    for r in rows.values():
        for k in r:
            if k not in keys:
                keys.append(k)
    stats = {}
    for k in keys:
        vals = [rows[f].get(k) for f in rows if rows[f].get(k) is not None]
        stats[k] = {"mean": float(np.mean(vals)) if vals else None,
                    "std": float(np.std(vals)) if vals else None, "folds": len(vals)}
    return {"folds": {str(f): rows[f] for f in sorted(rows)}, "summary": stats, "columns": keys}


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def write_summary(out: str, s: dict) -> str:
    _atomic_write(os.path.join(out, "summary.json"), json.dumps(s, indent=2) + "\n")
    cols = s["columns"]
    tmp = os.path.join(out, "summary.csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["fold"] + cols)
        for fold, r in s["folds"].items():
            w.writerow([fold] + ["" if r.get(c) is None else r.get(c) for c in cols])
        w.writerow(["mean"] + ["" if s["summary"][c]["mean"] is None else s["summary"][c]["mean"] for c in cols])
        w.writerow(["std"] + ["" if s["summary"][c]["std"] is None else s["summary"][c]["std"] for c in cols])
    os.replace(tmp, os.path.join(out, "summary.csv"))
    lines = ["| metric | " + " | ".join(f"fold {f}" for f in s["folds"]) + " | mean ± std |",
             "|---|" + "---|" * len(s["folds"]) + "---|"]
    for c in cols:
        st = s["summary"][c]
        ms = "-" if st["mean"] is None else f"{st['mean']:.4f} ± {st['std']:.4f}"
        lines.append(f"| {c} | " + " | ".join(_fmt(s["folds"][f].get(c)) for f in s["folds"]) + f" | {ms} |")
    table = "\n".join(lines) + "\n"
    _atomic_write(os.path.join(out, "summary.md"), table)
    return table


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # allow_abbrev off: medprep-train's "--fold" must not be read as our "--folds".
    pre = argparse.ArgumentParser(prog="medprep-train-cv", description=__doc__, add_help=False,
                                  formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    pre.add_argument("--folds", default="all", help="comma-separated folds or 'all' (default)")
    pre.add_argument("--out", default="runs/cv", help="output folder (default runs/cv)")
    pre.add_argument("-h", "--help", action="store_true")
    mine, rest = pre.parse_known_args(argv)
    rest = [r for r in rest if r != "--"]
    if mine.help:
        pre.print_help()
        print("\nmedprep-train options (passed through):\n")
        build_parser().print_help()
        return 0
    train_parser = build_parser()
    base = train_parser.parse_args(rest + ["--fold", "0"]) if "--fold" not in rest else train_parser.parse_args(rest)
    index = MedprepIndex.load(base.index)
    folds = list(range(index.folds_k)) if mine.folds == "all" else [int(f) for f in mine.folds.split(",")]
    os.makedirs(mine.out, exist_ok=True)
    per_fold = {}
    for f in folds:
        a = train_parser.parse_args([x for x in rest] + ["--fold", str(f), "--out", os.path.join(mine.out, f"fold{f}")])
        print(f"== fold {f} ({folds.index(f) + 1}/{len(folds)})", flush=True)
        res = run(a)
        per_fold[f] = res.get("final") or {}
    s = summarise(per_fold)
    table = write_summary(mine.out, s)
    print(table)
    print(f"summary: {os.path.join(mine.out, 'summary.md')}, {os.path.join(mine.out, 'summary.csv')}, "
          f"{os.path.join(mine.out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
