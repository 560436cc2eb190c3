"""Copy trained weights into the package (``src/amodal3d/weights/cpu-small``) in half precision.

    python scripts/ship_weights.py --detector RUNS/orcnn --maskrcnn-amodal RUNS/maskrcnn_amodal \
        --shape RUNS/shape --refine RUNS/refine --refine-no-prior RUNS/refine_no_prior

Each run folder holds ``model.safetensors`` + ``model.json`` and ``log.jsonl``; the training wall time
(first ``start`` to ``finished`` event, pauses included) is stored in the JSON as ``extra.train_seconds``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from amodal3d.engine.weights import load_weights, save_weights

TARGET = Path(__file__).resolve().parents[1] / "src" / "amodal3d" / "weights" / "cpu-small"
KINDS = {"detector": "detector", "maskrcnn_amodal": "detector", "shape": "shape-prior", "refine": "refine",
         "refine_no_prior": "refine"}


def train_seconds(run: Path) -> float | None:
    times = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    starts = [t["time"] for t in times if t.get("event") == "start"]
    ends = [t["time"] for t in times if t.get("event") == "finished"]
    return round(ends[-1] - starts[0], 1) if starts and ends else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for stem in KINDS:
        parser.add_argument(f"--{stem.replace('_', '-')}", help=f"run folder of {stem} (omitted: left as it is)")
    args = parser.parse_args()
    for stem, kind in KINDS.items():
        if getattr(args, stem) is None:
            continue
        run = Path(getattr(args, stem))
        state, config = load_weights(run / "model.safetensors", kind)
        info = json.loads((run / "model.json").read_text())
        extra = {**info.get("extra", {}), "train_seconds": train_seconds(run), "source_run": run.name}
        save_weights(TARGET / stem, state, kind, config, dtype=torch.float16, extra=extra)
        print(stem, (TARGET / f"{stem}.safetensors").stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
