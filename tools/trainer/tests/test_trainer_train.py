"""End to end: medprep-train on shards medprep wrote, a few iterations with every loss; the
k-fold driver; CORAL pretraining; a 2-process torchrun run with gloo."""
import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from medprep_train import cv, train

TINY = ["--epochs", "1", "--iters-per-epoch", "2", "--batch-size", "4", "--width", "4", "--depth", "2",
        "--workers", "0", "--val-max-samples", "6", "--no-progress", "--no-plots", "--overlays", "0", "--device", "cpu"]


def run_train(args):
    return train.run(train.build_parser().parse_args(args))


@pytest.mark.parametrize("loss", ["ce", "dice", "cdc", "boundary", "rrw", "qul", "emse", "co2", "contact",
                                  "ce+rrw", "dice+boundary", "0.5*ce+0.5*dice+rrw"])
def test_every_loss_trains(shards, tmp_path, loss):
    out = tmp_path / "run"
    r = run_train(["--index", shards["3d"], "--fold", "1", "--loss", loss, "--out", str(out)] + TINY)
    assert r["iterations"] == 2
    m = json.load(open(out / "metrics.json"))
    assert m["history"][0]["train_loss"] == pytest.approx(r["final"] and m["history"][0]["train_loss"])
    final = m["final"]
    assert set(final["dice"]) == {"background", "outer", "middle", "core"}
    assert 0 <= final["contact_surface_error"] <= 1 and 0 <= final["unimodal_share"] <= 1
    assert (out / "checkpoint.pt").exists() and (out / "metrics.csv").exists()


@pytest.mark.parametrize("extra", [
    ["--loss", "ce+rrw", "--schedule", "gradual"],
    ["--loss", "dice+boundary", "--schedule", "kervadec", "--boundary-classes", "1,3"],
    ["--loss", "ce+cdc+boundary", "--envelope", "topk", "--topk-k", "1.0:0.5", "--topk-sigma", "1",
     "--topk-pixel", "sigmoid", "--topk-tau", "0.2:0.05"],
    ["--loss", "ce+rrw+boundary", "--deep-supervision", "--augment", "flip,rot90"],
    ["--loss", "qul", "--envelope", "topk", "--topk-image", "hard", "--topk-k", "2"],
])
def test_schedules_envelope_and_deep_supervision(shards, tmp_path, extra):
    r = run_train(["--index", shards["3d"], "--out", str(tmp_path / "run")] + TINY + extra)
    assert r["iterations"] == 2 and r["final"]["loss"] == r["final"]["loss"]  # not NaN


def test_full_outputs_on_colour_images_with_plots(shards, tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for a in TINY if a not in ("--no-plots",)]
    args[args.index("--overlays") + 1] = "2"
    args[args.index("--epochs") + 1] = "2"
    run_train(["--index", shards["2dc"], "--fold", "0", "--loss", "ce+rrw", "--out", str(out)] + args)
    for f in ("loss.png", "metrics.png", "overlays.png", "checkpoint.pt", "best.pt", "metrics.json", "metrics.csv"):
        assert (out / f).exists(), f
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(x["epoch"]) for x in rows] == [0, 1] and "dice_core" in rows[0] and "hd95_core" in rows[0]
    printed = capsys.readouterr().out
    assert f"overlays: {out / 'overlays.png'}" in printed and "curves:" in printed
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 1 and ck["in_channels"] == 3 and ck["num_classes"] == 4
    # resume continues after the saved epoch
    args[args.index("--epochs") + 1] = "3"
    run_train(["--index", shards["2dc"], "--loss", "ce+rrw", "--out", str(out), "--resume", str(out / "checkpoint.pt")] + args)
    assert [h["epoch"] for h in json.load(open(out / "metrics.json"))["history"]] == [0, 1, 2]


def test_demo_quick_prints_where_curves_and_overlays_are(shards, tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "medprep_train.train", "--index", shards["2d"], "--demo-quick",
                        "--no-progress", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"curves: {out / 'loss.png'}, {out / 'metrics.png'}" in p.stdout
    assert f"overlays: {out / 'overlays.png'}" in p.stdout
    assert (out / "overlays.png").exists()


def test_coral_pretraining_then_fine_tuning(shards, tmp_path):
    out = tmp_path / "coral"
    r = run_train(["--index", shards["3d"], "--coral-epochs", "1", "--coral-iters-per-epoch", "2", "--out", str(out)] + TINY)
    ck = torch.load(out / "coral_encoder.pt", weights_only=False)
    assert ck["history"][0]["coral_loss"] > 0 and any(k.startswith("blocks.0") for k in ck["encoder"])
    # the saved encoder loads into a fresh run
    r2 = run_train(["--index", shards["3d"], "--pretrained-encoder", str(out / "coral_encoder.pt"),
                    "--out", str(tmp_path / "ft")] + TINY)
    assert r["iterations"] == r2["iterations"] == 2


def test_cross_validation_driver_summary(shards, tmp_path, capsys):
    out = tmp_path / "cv"
    assert cv.main(["--index", shards["2d"], "--out", str(out), "--loss", "ce"] + TINY) == 0
    s = json.load(open(out / "summary.json"))
    assert sorted(s["folds"]) == ["0", "1", "2", "3"]
    assert s["summary"]["mean_dice"]["folds"] <= 4 and "val_loss" in s["summary"]
    table = open(out / "summary.md").read()
    assert table.startswith("| metric | fold 0 | fold 1 | fold 2 | fold 3 | mean ± std |")
    assert "summary:" in capsys.readouterr().out


def test_bad_options_exit_with_a_message(shards, tmp_path, capsys):
    assert train.main(["--index", shards["3d"], "--fold", "9", "--out", str(tmp_path / "x")] + TINY) == 2
    assert "fold '9'" in capsys.readouterr().err
    assert train.main(["--index", shards["3d"], "--loss", "ce+focal", "--out", str(tmp_path / "y")] + TINY) == 2
    assert "'focal'" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(shards, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "medprep_train.train", "--index", shards["3d"], "--fold", "1", "--loss", "ce+rrw", "--backend", "gloo",
           "--out", str(out)] + TINY
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stdout + p.stderr
    ranks = [json.load(open(out / "ranks" / f"rank-{r}.json")) for r in (0, 1)]
    assert [x["rank"] for x in ranks] == [0, 1]
    assert all(x["world_size"] == 2 and x["iterations"] == 2 and x["samples"] == 8 for x in ranks)
    assert (out / "checkpoint.pt").exists()
    assert "world size 2" in p.stdout


def test_loss_plot_shows_the_validation_loss(tmp_path, monkeypatch):
    """loss.png from the history the trainer writes (validation loss under h['val']['loss'])."""
    from medprep_train import plots

    figs = []
    monkeypatch.setattr(plots, "_atomic_savefig", lambda fig, path: figs.append((fig, path)))
    history = [{"epoch": 1, "train_loss": 1.5, "val": {"loss": 1.4}}, {"epoch": 2, "train_loss": 1.2, "val": {"loss": 1.1}}]
    plots.plot_curves(history, str(tmp_path))
    fig, path = next(f for f in figs if f[1].endswith("loss.png"))
    lines = {l.get_label(): list(l.get_ydata()) for l in fig.axes[0].get_lines()}
    assert lines == {"train": [1.5, 1.2], "validation": [1.4, 1.1]}
