#!/usr/bin/env python3
"""Builds medprep's libFuzzer targets and runs them (docs/fuzzing.md).

    python3 tools/fuzz/run.py --seconds 600                 # every target 10 minutes
    python3 tools/fuzz/run.py --targets png,jpeg --runs 10000000
    python3 tools/fuzz/run.py --smoke                       # what tools/test.sh runs: ~6 s a target

The build (.build/fuzz, debug, address sanitizer + libFuzzer coverage, MEDPREP_FUZZ=1 so the
package declares the medprep-fuzz target) is separate from the normal one. Seed corpora come from
the committed fixtures (written by tools/fixtures/*.py) and from a `medprep synth` + `convert` run;
the corpora grow in .build/fuzz-corpus/<target>. A crash, a sanitizer report, a broken invariant,
a malloc above --malloc-limit-mb or a peak RSS above --rss-limit-mb leaves an artifact in
.build/fuzz-artifacts/<target>/ and makes the exit status 1. The figures (executions, coverage,
new units, peak RSS) go to .build/fuzz-summary.json and are printed as a table.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".build" / "fuzz"
CORPUS = ROOT / ".build" / "fuzz-corpus"
ARTIFACTS = ROOT / ".build" / "fuzz-artifacts"
FIX = ROOT / "Tests" / "Fixtures"
DICTS = Path(__file__).resolve().parent

#: target -> (seed globs under Tests/Fixtures, dictionary)
TARGETS = {
    "nifti": (["nifti/*.nii", "nifti/*.hdr", "hostile/*.nii"], "nifti.dict"),
    "nifti-gz": (["nifti/*.nii.gz", "hostile/*.nii.gz"], "nifti.dict"),
    "png": (["png/*.png", "png/hostile/*.png"], "png.dict"),
    "jpeg": (["jpeg/*.jpg", "jpeg/hostile/*"], "jpeg.dict"),
    "safetensors": (["safetensors/**/*.safetensors"], "json.dict"),
    "index": ([], "json.dict"),
    "journal": ([], "json.dict"),
    "manifest-yaml": ([], "yaml.dict"),
    "manifest-json": ([], "json.dict"),
}


def clang_rt() -> Path:
    """libFuzzer without its main (medprep-fuzz calls LLVMFuzzerRunDriver), from the Swift toolchain."""
    swiftc = shutil.which("swiftc")
    if not swiftc:
        sys.exit("fuzz: swiftc is not on PATH.")
    hits = glob.glob(str(Path(os.path.realpath(swiftc)).parents[1] / "lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a"))
    if not hits:
        sys.exit("fuzz: this Swift toolchain has no libclang_rt.fuzzer_no_main-x86_64.a; libFuzzer is needed.")
    return Path(hits[0])


def binary(config: str) -> Path:
    return BUILD / config / "medprep-fuzz"


def build(config: str) -> None:
    """`config` debug (the smoke run: quick to build) or release (long runs: 2-4x the executions a second;
    -enable-testing keeps the @testable imports working, Swift's bounds checks stay on at -O)."""
    cov = "inline-8bit-counters,pc-table,trace-cmp"
    flags = ["-Xswiftc", "-enable-testing"] if config == "release" else []
    flags += ["-Xswiftc", "-sanitize=address", "-Xswiftc", f"-sanitize-coverage=edge,{cov}",
             "-Xcc", "-fsanitize=address", "-Xcc", f"-fsanitize-coverage={cov}",
             "-Xlinker", str(clang_rt()), "-Xlinker", "-lstdc++"]
    env = dict(os.environ, MEDPREP_FUZZ="1")
    cmd = ["swift", "build", "-c", config, "--scratch-path", str(BUILD), "--product", "medprep-fuzz"] + flags
    print(f"fuzz: building medprep-fuzz ({config}, address sanitizer, libFuzzer coverage) in .build/fuzz",
          file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not binary(config).exists():
        lines = [ln for ln in (p.stdout + p.stderr).splitlines() if "error" in ln and "Cannot export" not in ln]
        sys.exit("fuzz: build failed:\n" + "\n".join(lines[-20:]))


def generated_seeds(medprep: str | None) -> dict[str, list[bytes]]:
    """index.json, manifests (YAML and JSON) and a journal from a small synth + convert run."""
    out: dict[str, list[bytes]] = {"index": [], "journal": [], "manifest-yaml": [], "manifest-json": []}
    for m in sorted((ROOT / "Manifests").glob("*.yaml")):
        out["manifest-yaml"].append(m.read_bytes())
    if medprep and os.path.exists(medprep):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([medprep, "synth", f"{d}/src", "--cases3d", "2", "--cases2d", "2", "--size3d", "16,16,4"],
                           check=True, capture_output=True)
            for ds in ("synth3d", "synth2d", "synth2d-colour"):
                out["manifest-yaml"].append(Path(f"{d}/src/{ds}/manifest.yaml").read_bytes())
                r = subprocess.run([medprep, "convert", f"{d}/src/{ds}", "--out", f"{d}/out-{ds}"], capture_output=True)
                if r.returncode == 0:
                    out["index"].append(Path(f"{d}/out-{ds}/index.json").read_bytes())
    try:
        import yaml  # the venv has PyYAML; without it the JSON manifests start from the dictionary
        for text in out["manifest-yaml"]:
            out["manifest-json"].append(json.dumps(yaml.safe_load(text), indent=1).encode())
    except ImportError:
        pass
    out["journal"].append(json.dumps({
        "fingerprint": "fuzz", "shards": [{"file": "shard-00000.safetensors", "sha256": "0" * 64}], "cases": [],
        "normalisation": [], "skipped": [], "sample_count": 3, "cursor_case": 1, "cursor_slice": 2}).encode())
    return out


def seed(target: str, extra: list[bytes]) -> Path:
    """The target's corpus folder, with the fixture seeds and `extra` added (kept across runs)."""
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    globs, _ = TARGETS[target]
    for g in globs:
        for f in glob.glob(str(FIX / g), recursive=True):
            if os.path.isfile(f) and not f.endswith(".json"):
                shutil.copyfile(f, d / ("seed-" + Path(f).name))
    for i, b in enumerate(extra):
        (d / f"seed-generated-{i}").write_bytes(b)
    return d


STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
COV = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")


def run_target(target: str, corpus: Path, args) -> dict:
    art = ARTIFACTS / target
    art.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(art))
    cmd = [str(binary(args.config)), str(corpus), f"-dict={DICTS / TARGETS[target][1]}", f"-artifact_prefix={art}/",
           f"-rss_limit_mb={args.rss_limit_mb}", f"-malloc_limit_mb={args.malloc_limit_mb}", "-timeout=20",
           "-print_final_stats=1", "-use_value_profile=1"]
    if args.runs:
        cmd.append(f"-runs={args.runs}")
    if args.seed:
        cmd.append(f"-seed={args.seed}")
    if args.seconds:
        cmd.append(f"-max_total_time={args.seconds}")
    env = dict(os.environ, MEDPREP_FUZZ_TARGET=target, ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1",
               SWIFT_BACKTRACE="enable=no")  # libFuzzer prints the stack; the backtracer can hang a replay
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace")
    wall = time.monotonic() - t0
    stats, cov, ft = {}, 0, 0
    for ln in p.stderr.splitlines():
        m = STAT.match(ln)
        if m:
            stats[m.group(1)] = int(m.group(2))
        m = COV.match(ln)
        if m:
            cov, ft = int(m.group(2)), int(m.group(3))
    found = sorted(set(os.listdir(art)) - before)
    # libFuzzer keeps inputs that took over 10 s as slow-unit-*: a real hang would have hit
    # -timeout, so each is replayed alone; only one that is still slow then is a finding (on a
    # loaded machine a fuzzer can stall for seconds: both such units of the first long runs
    # replayed in 0.1 s).
    slow = []
    for f in [f for f in found if f.startswith("slow-unit-")]:
        t1 = time.monotonic()
        subprocess.run([str(binary(args.config)), str(art / f)], env=env, capture_output=True)
        slow.append({"file": str(art / f), "replay_seconds": round(time.monotonic() - t1, 2)})
    found = [f for f in found if not f.startswith("slow-unit-") or any(s["file"].endswith(f) and s["replay_seconds"] > 10 for s in slow)]
    res = {"target": target, "executions": stats.get("number_of_executed_units", 0),
           "exec_per_s": stats.get("average_exec_per_sec", 0), "coverage_edges": cov, "features": ft,
           "new_units": stats.get("new_units_added", 0), "peak_rss_mb": stats.get("peak_rss_mb", 0),
           "corpus_files": len(os.listdir(corpus)), "seconds": round(wall, 1), "exit_status": p.returncode,
           "artifacts": [str(art / f) for f in found], "slow_units": slow,
           "slowest_unit_seconds": stats.get("slowest_unit_time_sec", 0)}
    if p.returncode != 0 or found:
        tail = "\n".join(p.stderr.splitlines()[-40:])
        print(f"fuzz: target '{target}' found a problem (exit {p.returncode}); artifacts: {found}\n{tail}",
              file=sys.stderr)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="all", help=f"comma-separated, or all: {', '.join(TARGETS)}")
    ap.add_argument("--seconds", type=int, default=60, help="time per target (default 60)")
    ap.add_argument("--runs", type=int, default=0, help="stop a target after this many executions (0: no limit)")
    ap.add_argument("--smoke", action="store_true", help="a short check that every target builds and runs (6 s each, seed 1)")
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: from the clock)")
    ap.add_argument("--rss-limit-mb", type=int, default=2048, help="peak RSS counted as a finding (ASan adds its own)")
    ap.add_argument("--malloc-limit-mb", type=int, default=512, help="one allocation above this is a finding")
    ap.add_argument("--medprep", default=str(ROOT / ".build" / "release" / "medprep"),
                    help="release binary for the generated seeds (index.json, manifests)")
    ap.add_argument("--config", choices=("debug", "release"), default=None,
                    help="build configuration (default: debug for --smoke, release otherwise)")
    ap.add_argument("--no-build", action="store_true", help="use the medprep-fuzz already built")
    ap.add_argument("--summary", default=str(ROOT / ".build" / "fuzz-summary.json"))
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds, args.runs, args.seed = 6, 0, args.seed or 1
    args.config = args.config or ("debug" if args.smoke else "release")
    targets = list(TARGETS) if args.targets == "all" else [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        ap.error(f"unknown target(s) {', '.join(bad)}; expected some of {', '.join(TARGETS)}")
    if not args.no_build:
        build(args.config)
    extra = generated_seeds(args.medprep)
    results = []
    for t in targets:
        results.append(run_target(t, seed(t, extra.get(t, [])), args))
        r = results[-1]
        print(f"fuzz: {t:14s} {r['executions']:>10,d} runs {r['exec_per_s']:>6,d}/s  cov {r['coverage_edges']:>6d}  "
              f"ft {r['features']:>6d}  new {r['new_units']:>5d}  peak {r['peak_rss_mb']:>5d} MiB  "
              f"{'FOUND ' + str(len(r['artifacts'])) if r['artifacts'] or r['exit_status'] else 'ok'}", flush=True)
    Path(args.summary).write_text(json.dumps({"seconds_per_target": args.seconds, "runs_limit": args.runs,
                                              "targets": results}, indent=1) + "\n")
    failed = [r["target"] for r in results if r["exit_status"] != 0 or r["artifacts"]]
    if failed:
        print(f"fuzz: findings in {', '.join(failed)} (see .build/fuzz-artifacts/)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
