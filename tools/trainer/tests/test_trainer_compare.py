"""medprep-train-compare on shards medprep wrote: the table holds, per loss, the mean over folds of
what each run wrote to its own metrics.json; the outputs exist; bad options fail cleanly."""
import csv
import json
import math

import pytest
from PIL import Image

from medprep_train import compare

TINY = ["--epochs", "1", "--iters-per-epoch", "2", "--width", "4", "--depth", "2", "--batch-size", "2",
        "--workers", "0", "--no-progress", "--overlays", "0", "--no-plots", "--val-max-samples", "8", "--device", "cpu"]


def _mean(vals):
    return sum(vals) / len(vals)


@pytest.fixture(scope="module")
def compared(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    rc = compare.main(["--index", shards["3d"], "--losses", "ce;0.5*ce+contact", "--folds", "1", "--out", str(out)] + TINY)
    assert rc == 0
    return out


def test_table_is_the_mean_of_what_each_run_wrote(compared):
    rep = json.load(open(compared / "comparison.json"))
    assert [l["loss"] for l in rep["losses"]] == ["ce", "0.5*ce+contact"]
    assert rep["folds"] == [1]
    for l in rep["losses"]:
        finals = [json.load(open(compared / l["slug"] / f"fold{f}" / "metrics.json"))["final"] for f in rep["folds"]]
        assert {"mean_dice", "contact_surface_error", "unimodal_share"} <= set(l["summary"])
        scalars = {k for fin in finals for k, v in fin.items() if isinstance(v, (int, float)) and k not in ("cases", "loss")}
        assert scalars <= set(l["summary"]), scalars - set(l["summary"])
        for key in sorted(scalars | {"mean_hd95"}):
            vals = [fin[key] for fin in finals if fin.get(key) is not None]
            if not vals:
                assert l["summary"].get(key) is None or l["summary"][key]["mean"] is None
                continue
            st = l["summary"][key]
            assert st["mean"] == pytest.approx(_mean(vals)) and st["folds"] == len(vals)
            assert st["std"] == pytest.approx(math.sqrt(_mean([(v - _mean(vals)) ** 2 for v in vals])))


def test_csv_md_png_written(compared):
    rows = list(csv.DictReader(open(compared / "comparison.csv")))
    rep = json.load(open(compared / "comparison.json"))
    assert [r["loss"] for r in rows] == ["ce", "0.5*ce+contact"] and all(r["folds"] == "1" for r in rows)
    for r, l in zip(rows, rep["losses"]):
        assert float(r["contact_surface_error_mean"]) == pytest.approx(l["summary"]["contact_surface_error"]["mean"])
    md = (compared / "comparison.md").read_text()
    assert "| `ce` | 1 |" in md and "contact-surface error" in md and "| `0.5*ce+contact` | 1 |" in md
    with Image.open(compared / "comparison.png") as im:
        im.verify()
    with Image.open(compared / "comparison.png") as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert not list(compared.glob("*.tmp"))


@pytest.mark.parametrize("args, needle", [
    (["--losses", "ce;cee+dice"], "'cee+dice'"),
    (["--losses", "ce;ce"], "'ce'"),
    (["--losses", "ce", "--folds", "7"], "'7'"),
    (["--losses", "ce", "--fold", "0"], "--folds"),
])
def test_bad_options_fail_cleanly(shards, tmp_path, capsys, args, needle):
    rc = compare.main(["--index", shards["3d"], "--out", str(tmp_path / "c")] + args + TINY)
    err = capsys.readouterr().err
    assert rc == 2 and "medprep-train-compare: error:" in err and needle in err, err
    assert not (tmp_path / "c" / "comparison.json").exists()
