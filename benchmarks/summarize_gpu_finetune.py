"""What a GPU round of ``scripts/gpu_finetune.sh`` did, from its work folder: the GPU, the CUDA test,
the r50-fpn bf16 iterations, and for each training run (``WORK/runs*/NAME``, in order) its iterations,
batch size, throughput, wall time and loss at the start and end.

    python benchmarks/summarize_gpu_finetune.py WORK -> benchmarks/results/gpu_finetune.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from amodal3d.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def run_summary(run: Path) -> dict:
    """Iterations, throughput and losses of one run folder (``log.jsonl`` + ``config.yaml``)."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r]
    start = next(r["time"] for r in records if r.get("event") in ("start", "resume"))
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    train = config.get("train", {})
    return {"iterations": steps[-1]["iteration"] if steps else 0, "batch_size": train.get("batch_size"),
            "lr": train.get("lr"), "amp": train.get("amp"), "init": config.get("init"),
            "seconds": round(records[-1]["time"] - start, 1),
            "images_per_s": round(sum(r["images_per_s"] for r in steps[1:]) / max(len(steps) - 1, 1), 1),
            "first_loss": steps[0]["loss"] if steps else None, "last_loss": steps[-1]["loss"] if steps else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the WORK folder given to scripts/gpu_finetune.sh")
    args = parser.parse_args()
    logs = args.work / "logs"
    rounds = sorted(p for p in args.work.glob("runs*") if p.is_dir())
    report = {
        "benchmark": "GPU round of scripts/gpu_finetune.sh",
        "command": "python benchmarks/summarize_gpu_finetune.py WORK",
        "gpu": (logs / "gpu.txt").read_text().strip().splitlines() if (logs / "gpu.txt").is_file() else None,
        "cuda_test": (logs / "pytest_gpu.log").read_text().strip().splitlines()[-2:]
        if (logs / "pytest_gpu.log").is_file() else None,
        "commands": {p.stem.removeprefix("command_"): p.read_text().strip()
                     for p in sorted(logs.glob("command_*.txt"))},
        "rounds": {r.name: {run.name: run_summary(run) for run in sorted(r.iterdir()) if (run / "log.jsonl").is_file()}
                   for r in rounds},
    }
    atomic_write_json(RESULTS / "gpu_finetune.json", report, indent=2)
    for name, runs in report["rounds"].items():
        for run, summary in runs.items():
            print(f"{name}/{run}: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
