"""Data engine speed: images/s of `generate` at 256x256 with 2-4 objects (3 on average).

    python benchmarks/bench_generate.py [--images 200] [--workers 2]

Writes benchmarks/results/generate.json (key ``images_per_s``, with the machine and arguments).
The mesh pool is generated once before timing (as in a real run, where each worker caches meshes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from amodal3d.data.generate import GenerateConfig, generate
from amodal3d.data.scene import SceneConfig
from amodal3d.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    scene = SceneConfig(size=args.size)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: a short run fills no cache across processes, but loads modules and checks the setup
        generate(GenerateConfig(out=f"{tmp}/warm", splits={"train": 4}, shard_size=2, scene=scene),
                 workers=1, progress=False)
        config = GenerateConfig(out=f"{tmp}/bench", splits={"train": args.images}, shard_size=25, scene=scene)
        start = time.perf_counter()
        files = generate(config, workers=args.workers, progress=False)
        elapsed = time.perf_counter() - start
        data = json.loads(Path(files["train"]).read_text())
        objects = len(data["annotations"]) / len(data["images"])
        rates = np.array([a["occlude_rate"] for a in data["annotations"]])
        shutil.rmtree(f"{tmp}/bench")
    result = {
        "images_per_s": round(args.images / elapsed, 2),
        "seconds": round(elapsed, 2),
        "objects_per_image": round(objects, 2),
        "occlusion": {"unoccluded_fraction (<0.05)": round(float(np.mean(rates < 0.05)), 3),
                      "bins": {f"[{lo}, {hi})": round(float(np.mean((rates >= lo) & (rates < hi))), 3)
                               for lo, hi in ((0.0, 0.05), (0.05, 0.25), (0.25, 0.5), (0.5, 0.8), (0.8, 1.01))}},
        "arguments": vars(args),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "note": "includes procedural mesh generation (cached per worker), ray casting, shading, PNG and "
                "JSON writing; wall clock of the whole generate() call",
    }
    atomic_write_json(RESULTS, result, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
