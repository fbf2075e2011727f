#!/usr/bin/env python3
"""Dataset validation speed: `medprep validate` vs nnU-Net's `verify_dataset_integrity`, same input, one run.

    .venv/bin/python tools/bench/bench_validate.py [--medprep .build/release/medprep] [--cases 24]
        [--size3d 96,96,24] [--threads N] [--nnunet-venv DIR] [--keep DIR]

Input: medprep's synthetic 3D dataset (`medprep synth --cases3d N`), which is laid out as an nnU-Net
raw dataset (dataset.json, imagesTr/{id}_0000.nii.gz, labelsTr/{id}.nii.gz; int16 images, uint8
ordinal masks, anisotropic spacing, half of the cases stored LPS). Both tools read the same files.

Timed (page cache warmed first by reading every file once):
  nnU-Net  verify_dataset_integrity(folder, num_processes=1), timed around the call inside its own
           Python process (interpreter start and imports excluded; its one spawned worker included,
           as it is part of the call).
  medprep  `medprep validate DATASET --json REPORT --threads T`, wall time of the whole process,
           once with --threads 1 (one process, one thread: like for like) and once with all cores.
Ratio = nnU-Net seconds / medprep seconds. Goal: >= 5x while checking strictly more (the script
prints both check lists).

nnU-Net without a 5 GB torch: on first run the script creates a venv (default
/tmp/medprep-bench-nnunet-venv, or --nnunet-venv) and installs `nnunetv2 --no-deps` plus only what
the import path of verify_dataset_integrity needs (numpy, pandas, SimpleITK, nibabel, tifffile,
scikit-image, blosc2; batchgenerators and acvl_utils without their dependencies): about 700 MB from
PyPI. nnU-Net's label_handling and acvl_utils import torch for type hints, a decorator and helpers
that verify_dataset_integrity never calls; when torch is not installed in that venv the script puts
a small import-time stand-in for it on PYTHONPATH and says so. With a real torch in the venv, that
is used instead.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = Path(tempfile.gettempdir()) / "medprep-bench-nnunet-venv"
PACKAGES = ["numpy", "pandas", "SimpleITK", "nibabel", "tifffile", "scikit-image", "blosc2"]
NO_DEPS = ["nnunetv2", "batchgenerators", "acvl_utils"]

TORCH_STUB = '''"""Import-time stand-in for torch (tools/bench/bench_validate.py): nnU-Net's verify_dataset_integrity
imports modules that import torch for type hints, @torch.inference_mode() and helpers it never calls.
Any attribute is a placeholder; used as a decorator it returns the function unchanged."""
class _Placeholder:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k):
        if len(a) == 1 and callable(a[0]) and not k:
            return a[0]
        return _Placeholder()
    def __getattr__(self, name): return _Placeholder()
def __getattr__(name):
    return _Placeholder
'''

NNUNET_CHECKS = [
    "dataset.json keys present; numTraining matches",
    "every image has a label file (assert, stops at the first failure)",
    "unexpected label values (np.unique per mask)",
    "NaN in images, NaN in masks",
    "shape mismatch image vs mask",
    "spacing mismatch image vs mask",
    "number of channels",
    "origin / direction / affine mismatch (printed warnings)",
    "labels consecutive in dataset.json",
    "'only background' warning (its condition can never be true)",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_nnunet(venv: Path) -> tuple[Path, dict]:
    """Returns (python, extra env). Installs on first run."""
    py = venv_python(venv)
    probe = [str(py), "-c", "import nnunetv2, SimpleITK, pandas, batchgenerators, acvl_utils, blosc2, skimage"]
    if not py.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        log(f"bench_validate: installing nnU-Net v2 without torch into {venv} (first run only, about 700 MB from PyPI)")
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + PACKAGES, check=True)
        subprocess.run(pip + ["--no-deps"] + NO_DEPS, check=True)
    env = dict(os.environ)
    has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        stub = venv / "torch-stub" / "torch"
        for sub in ["", "nn"]:
            (stub / sub).mkdir(parents=True, exist_ok=True)
            (stub / sub / "__init__.py").write_text(TORCH_STUB)
        (stub / "nn" / "functional.py").write_text(TORCH_STUB)
        env["PYTHONPATH"] = str(venv / "torch-stub") + os.pathsep + env.get("PYTHONPATH", "")
        log("bench_validate: torch is not installed in the nnU-Net venv; using an import-time stand-in "
            "(verify_dataset_integrity does not call torch)")
    return py, env


def time_nnunet(py: Path, env: dict, folder: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its worker, stdout)."""
    code = (
        "import time, sys, resource\n"
        "from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity\n"
        "def cpu():\n"
        "    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime\n"
        "t, c = time.perf_counter(), cpu()\n"
        f"verify_dataset_integrity({str(folder)!r}, num_processes=1)\n"
        "print('BENCH_SECONDS', time.perf_counter() - t, cpu() - c)\n"
    )
    scratch = folder.parent / "nnunet-paths"
    for k in ["nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"]:
        env.setdefault(k, str(scratch / k))
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"nnU-Net failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    fields = next(l for l in proc.stdout.splitlines() if l.startswith("BENCH_SECONDS")).split()
    return float(fields[1]), float(fields[2]), proc.stdout


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_medprep(binary: Path, folder: Path, threads: int, report: Path) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, report)."""
    c0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run([str(binary), "validate", str(folder), "--json", str(report), "--threads", str(threads), "--quiet"],
                          capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - t0, children_cpu() - c0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"medprep validate failed ({proc.returncode}): {proc.stderr}")
    return seconds, cpu, json.loads(report.read_text())


def warm(folder: Path) -> int:
    n = 0
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            n += len(p.read_bytes())
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--medprep", type=Path, default=ROOT / ".build" / "release" / "medprep")
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--size3d", default="96,96,24")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--nnunet-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--keep", type=Path, help="write the dataset here and keep it")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not args.medprep.exists():
        log(f"bench_validate: {args.medprep} not found; build it with 'swift build -c release' or pass --medprep")
        return 2

    py, env = ensure_nnunet(args.nnunet_venv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="medprep-bench-validate-"))
    try:
        subprocess.run([str(args.medprep), "synth", str(work / "data"), "--cases3d", str(args.cases), "--cases2d", "1",
                        "--size3d", args.size3d, "--force"], check=True, capture_output=True)
        folder = work / "data" / "synth3d"
        nbytes = warm(folder)
        nn_seconds, nn_cpu, nn_out = time_nnunet(py, env, folder)
        mp1, mp1_cpu, doc = time_medprep(args.medprep, folder, 1, work / "report-1.json")
        mpn, mpn_cpu, _ = time_medprep(args.medprep, folder, args.threads, work / "report-n.json")
        codes = json.loads((ROOT / "Schemas" / "validation-report.schema.json").read_text())["$defs"]["code"]["enum"]
        load = os.getloadavg()[0]
        result = {
            "cases": args.cases, "size3d": args.size3d, "bytes_on_disk": nbytes, "load_average": load,
            "nnunet_seconds": nn_seconds, "nnunet_cpu_seconds": nn_cpu,
            "medprep_seconds_1_thread": mp1, "medprep_cpu_seconds_1_thread": mp1_cpu,
            "medprep_seconds": mpn, "medprep_cpu_seconds": mpn_cpu, "medprep_threads": args.threads,
            "ratio_1_thread": nn_seconds / mp1, "ratio": nn_seconds / mpn, "cpu_ratio": nn_cpu / mp1_cpu,
            "medprep_findings": len(doc["findings"]), "nnunet_ok": "verify_dataset_integrity Done" in nn_out,
            "medprep_check_codes": len(codes), "nnunet_checks": len(NNUNET_CHECKS),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"dataset: {args.cases} cases of {args.size3d} (nnU-Net raw layout), {nbytes / 1e6:.1f} MB on disk; "
                  f"load average {load:.1f} on {os.cpu_count()} cores")
            print(f"                                              wall        CPU")
            print(f"nnU-Net verify_dataset_integrity (1 process): {nn_seconds:7.3f} s  {nn_cpu:7.3f} s")
            print(f"medprep validate --threads 1:                 {mp1:7.3f} s  {mp1_cpu:7.3f} s   "
                  f"ratio {nn_seconds / mp1:.1f}x wall, {nn_cpu / mp1_cpu:.1f}x CPU")
            print(f"medprep validate --threads {args.threads}:                 {mpn:7.3f} s  {mpn_cpu:7.3f} s   "
                  f"ratio {nn_seconds / mpn:.1f}x wall")
            print(f"findings: medprep {len(doc['findings'])}, nnU-Net {'none (Done)' if result['nnunet_ok'] else 'see output'}")
            print(f"\nnnU-Net checks ({len(NNUNET_CHECKS)}):")
            for c in NNUNET_CHECKS:
                print(f"  - {c}")
            print(f"\nmedprep checks ({len(codes)} codes, docs/validate.md): " + ", ".join(codes))
            print(f"\ngoal >= 5x: {'met' if nn_seconds / mp1 >= 5 else 'NOT met'} single-threaded (wall), "
                  f"{'met' if nn_seconds / mpn >= 5 else 'NOT met'} with {args.threads} threads (wall)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
