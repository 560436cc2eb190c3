"""Copy trained weights into the package (``src/amodal3d/weights/cpu-small``) in half precision.

    python scripts/ship_weights.py --detector RUNS/orcnn --crop-head RUNS/crop_head \
        --maskrcnn-amodal RUNS/maskrcnn_amodal --shape RUNS/shape --refine RUNS/refine \
        --refine-no-prior RUNS/refine_no_prior

Each run folder holds ``model.safetensors`` + ``model.json`` and ``log.jsonl``; the training wall time
(summed over start/resume segments) is stored in the JSON as ``extra.train_seconds``. A run that started
from trained weights (``--init``, recorded in its ``config.yaml``) inherits their record: its time is
added to theirs and their other entries (e.g. ``gpu_finetune``) are kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from amodal3d.engine.weights import load_weights, save_weights

TARGET = Path(__file__).resolve().parents[1] / "src" / "amodal3d" / "weights" / "cpu-small"
KINDS = {"detector": "detector", "crop_head": "crop-head", "maskrcnn_amodal": "detector", "shape": "shape-prior",
         "refine": "refine", "refine_no_prior": "refine"}


def log_records(run: Path) -> list[dict]:
    """The records of the run's ``log.jsonl``."""
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def train_seconds(run: Path) -> float | None:
    """Active training time: the sum over the run's segments (a start or resume event to the last record
    before the next one), so time between a kill and the resume is not counted."""
    records = log_records(run)
    if not any(r.get("event") == "finished" for r in records):
        return None
    total, segment_start, last = 0.0, None, None
    for record in records:
        if record.get("event") in ("start", "resume"):
            if segment_start is not None:
                total += last - segment_start
            segment_start = record["time"]
        last = record["time"]
    return round(total + (last - segment_start), 1)


def lineage(run: Path) -> dict:
    """The ``extra`` of this run: its training time plus, for a run started ``--init`` from weights with a
    JSON record, that record (times added, source runs chained); an init that is another run's
    ``model.safetensors`` brings that run's own lineage."""
    seconds, name = train_seconds(run), run.name
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    init = (config or {}).get("init")
    if init and Path(init).name == "model.safetensors" and (Path(init).parent / "config.yaml").is_file():
        before = lineage(Path(init).parent)
    elif init and Path(init).with_suffix(".json").is_file():
        record = Path(init).with_suffix(".json")
        records = log_records(run)
        if records and record.stat().st_mtime > records[0]["time"]:
            raise SystemExit(f"{run}: its --init record {record} was rewritten after the run started (shipped "
                             "again?); point the run's config.yaml 'init' at a copy of the weights it started from")
        before = json.loads(record.read_text()).get("extra", {})
    else:
        return {"train_seconds": seconds, "source_run": name}
    if seconds is not None and before.get("train_seconds") is not None:
        seconds = round(before["train_seconds"] + seconds, 1)
    chain = f"{before.get('source_run', Path(init).name)}, then {name}"
    return {**before, "train_seconds": seconds, "source_run": chain}


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
        extra = {**info.get("extra", {}), **lineage(run)}
        save_weights(TARGET / stem, state, kind, config, dtype=torch.float16, extra=extra)
        print(stem, (TARGET / f"{stem}.safetensors").stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
