"""Memory profile of ``amodal3d predict`` on a folder of 100 and of 1,000 images.

Each count runs ``amodal3d predict`` (shipped model, end to end, overlays written) in its own process;
its resident memory is sampled from ``/proc/PID/status`` (VmRSS, and VmHWM for the peak) while it runs.
A flat profile means the peak at 1,000 images is that at 100 (nothing accumulates per image).

    python benchmarks/bench_predict_memory.py --images DATA/images/test   # or: generated on the fly
    -> benchmarks/results/predict_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _status_kb(pid: int) -> dict[str, int]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def profile_predict(images: list[Path], work: Path, threads: int, interval: float = 0.25) -> dict:
    """Run ``amodal3d predict`` on ``images``; peak RSS, an RSS trace (MB, every ``interval`` s), wall time."""
    folder = work / f"images_{len(images)}"
    folder.mkdir(parents=True)
    for path in images:
        (folder / path.name).symlink_to(path.resolve())
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "amodal3d", "predict", str(folder), "--out", str(work / f"out_{len(images)}")]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    trace, peak_kb = [], 0
    while process.poll() is None:
        status = _status_kb(process.pid)
        if status:
            trace.append(round(status.get("VmRSS", 0) / 1024, 1))
            peak_kb = max(peak_kb, status.get("VmHWM", 0))
        time.sleep(interval)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    if process.returncode != 0:
        raise SystemExit(f"predict failed ({process.returncode}): {output}")
    steady = trace[len(trace) // 10:] or trace  # after model loading
    return {"images": len(images), "peak_rss_mb": round(peak_kb / 1024, 1), "wall_s": round(wall, 1),
            "images_per_s": round(len(images) / wall, 2), "rss_first_decile_mb": max(trace[: len(trace) // 10 or 1]),
            "rss_steady_min_mb": min(steady), "rss_steady_max_mb": max(steady),
            "rss_trace_mb": trace[:: max(1, len(trace) // 200)], "summary": output.strip().splitlines()[-1:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: generate 1,000 test scenes)")
    parser.add_argument("--counts", default="100,1000")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS / "predict_memory.json")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    work = Path(tempfile.mkdtemp(prefix="amodal3d_mem_"))
    try:
        source = args.images
        if source is None:
            source = work / "data" / "images" / "test"
            subprocess.run([sys.executable, "-m", "amodal3d", "generate", "--out", str(work / "data"), "--split",
                            f"test={max(counts)}", "--size", "256", "--workers", "2", "--seed", "7"], check=True,
                           stdout=subprocess.DEVNULL)
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if len(images) < max(counts):
            raise SystemExit(f"{source}: {len(images)} images, need {max(counts)}")
        runs = [profile_predict(images[:count], work, args.threads) for count in counts]
        for run in runs:
            print(f"{run['images']:5d} images: peak RSS {run['peak_rss_mb']} MB, steady {run['rss_steady_min_mb']}-"
                  f"{run['rss_steady_max_mb']} MB, {run['images_per_s']} img/s")
        result = {"benchmark": "predict_memory", "command": "python benchmarks/bench_predict_memory.py",
                  "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "threads": args.threads,
                  "runs": runs, "peak_ratio_last_to_first": round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 3)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
