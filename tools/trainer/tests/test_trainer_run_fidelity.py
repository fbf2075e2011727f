"""Run-level behaviour: batches independent of --workers, validation subsets and overlays spread
over the cases, HD95 in mm from the spacing index.json records, mixed precision on CPU, defaults
in --help."""
import json

import numpy as np
import pytest
import torch

from medprep_train import metrics as M
from medprep_train import train
from medprep_train.dataset import MedprepIndex
from medprep_train.precision import Precision
from medprep_train.sampling import overlay_samples, spread_samples

ndi = pytest.importorskip("scipy.ndimage")

TINY = ["--iters-per-epoch", "3", "--batch-size", "4", "--width", "4", "--depth", "2", "--val-max-samples", "6",
        "--no-progress", "--no-plots", "--overlays", "0", "--device", "cpu", "--threads", "1"]


def run_train(args):
    return train.run(train.build_parser().parse_args(args))


def test_losses_do_not_depend_on_the_worker_count(shards, tmp_path):
    """Same seed, 0 / 1 / 2 workers: identical training losses over 3 epochs (a persistent
    worker never saw set_epoch, and the shuffle drew from a generator shared with the workers)."""
    hist = {}
    for w in (0, 1, 2):
        out = tmp_path / f"w{w}"
        run_train(["--index", shards["3d"], "--epochs", "3", "--workers", str(w), "--out", str(out), "--seed", "4",
                   "--augment", "flip,rot90,intensity"] + TINY)
        hist[w] = [h["train_loss"] for h in json.load(open(out / "metrics.json"))["history"]]
    assert hist[0] == hist[1] == hist[2], hist
    assert len(set(hist[0])) == 3


def test_validation_subset_spreads_over_cases(shards):
    index = MedprepIndex.load(shards["3d"])
    _, val = index.fold_split(0)
    picked = spread_samples(index, val, 6)
    cases = index.case_of_sample[picked]
    assert len(picked) <= 6 and set(cases) == set(index.case_of_sample[val])  # every validation case
    for c in set(cases):
        sl = np.sort(picked[cases == c])
        gaps = np.diff(sl)
        assert len(set(gaps.tolist())) <= 1  # a constant stride: a regular stack
        first = index.cases[int(c)]["slice_range"]["first_sample"]
        count = index.cases[int(c)]["slice_range"]["count"]
        assert sl[0] > first and sl[-1] < first + count - 1  # not the edge slices
    assert spread_samples(index, val, 10_000).tolist() == sorted(val.tolist())


def test_overlays_take_well_filled_slices_of_several_cases(shards):
    index = MedprepIndex.load(shards["3d"])
    from medprep_train.dataset import MedprepDataset
    _, val = index.fold_split(0)
    ds = MedprepDataset(index, val, maps=())
    picks = overlay_samples(index, val, 4, ds.label_of)
    assert len(picks) == 4 and len(set(index.case_of_sample[picks])) == len(set(index.case_of_sample[val]))
    for s in picks:
        c = int(index.case_of_sample[s])
        members = val[index.case_of_sample[val] == c]
        areas = sorted((int((ds.label_of(m) > 0).sum()) for m in members), reverse=True)
        # well filled (at least half the largest), or among the 2 largest of its case
        assert 2 * int((ds.label_of(s) > 0).sum()) >= areas[0] or int((ds.label_of(s) > 0).sum()) >= areas[1] > 0


def test_hd95_in_mm_uses_slice_step_and_spacing():
    # one case, 3 slices, slice step 3 mm, pixels 0.5 x 2 mm: a single-voxel prediction vs truth
    # offset by one slice and one column: distance sqrt(3^2 + 2^2) (scipy on the sampled grid)
    gt = np.zeros((3, 4, 4), np.int64)
    pr = np.zeros_like(gt)
    gt[0, 1, 1] = 1
    pr[1, 1, 2] = 1
    met = M.SegMetrics(2, case_spacing=lambda c: (3.0, 0.5, 2.0))
    onehot = lambda a: torch.from_numpy(np.eye(2)[a]).permute(2, 0, 1)[None].double()  # noqa: E731
    for s in range(3):
        met.update(onehot(pr[s]), torch.from_numpy(gt[s])[None], [7], [s])
    r = met.compute()
    assert r["hd95_units"] == "mm"
    assert r["hd95"]["1"] == pytest.approx(np.sqrt(3.0 ** 2 + 2.0 ** 2))
    # every other slice (stride 2): the stack's step is 6 mm
    met2 = M.SegMetrics(2, case_spacing=lambda c: (3.0, 0.5, 2.0))
    for s in (0, 2):
        met2.update(onehot(pr[1] if s == 2 else pr[s]), torch.from_numpy(gt[s])[None], [7], [s])
    assert met2.compute()["hd95"]["1"] == pytest.approx(np.sqrt(6.0 ** 2 + 2.0 ** 2))


def test_index_records_the_slice_step_and_runs_report_mm(shards, tmp_path):
    index = MedprepIndex.load(shards["3d"])
    assert index.records_slice_step
    for c in index.cases:
        # synth3d keeps the slice axis ('keep' in target_spacing): the step is the source spacing along z
        assert c["slice_step_mm"] == pytest.approx(c["original_geometry"]["spacing"][2], rel=1e-6)
    r = run_train(["--index", shards["3d"], "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "mm")] + TINY)
    px = run_train(["--index", shards["3d"], "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "px"),
                    "--hd95-units", "px"] + TINY)
    assert r["final"]["hd95_units"] == "mm" and px["final"]["hd95_units"] == "px"
    assert r["final"]["dice"] == px["final"]["dice"]


def test_bf16_autocast_on_cpu_trains(shards, tmp_path):
    prec = Precision("bf16", torch.device("cpu"), channels_last=True)
    conv = prec.model(torch.nn.Conv2d(1, 2, 3))
    with prec.autocast():
        y = conv(prec.input(torch.randn(2, 1, 8, 8)))
    assert y.dtype == torch.bfloat16 and Precision.float32(y).dtype == torch.float32
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    r = run_train(["--index", shards["3d"], "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "amp"),
                   "--amp", "bf16", "--channels-last", "--loss", "ce+rrw+contact"] + TINY)
    assert r["iterations"] == 3 and np.isfinite(r["final"]["loss"])
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Precision("fp16", torch.device("cpu"))


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for want in ("(default: flip,rot90)", "(default: 50)", "(default: 0.001)", "(default: pairs)", "(default: distance)",
                 "(default: none)", "(default: mm)", "(default: batch)"):
        assert want in " ".join(out.split()), want
