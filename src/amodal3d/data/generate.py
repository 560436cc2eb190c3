"""Dataset generation at scale: splits disjoint by mesh, deterministic whatever the number of
workers, written in shards with temp-file-then-rename so an interrupted run resumes where it stopped.

Layout of ``OUT``::

    OUT/generation.json                     the arguments (a resumed run must use the same)
    OUT/images/<split>/<image_id:06d>.png
    OUT/annotations/<split>.json            written once every shard of the split is done
    OUT/annotations/parts/<split>/<shard:05d>.json   one per finished shard
    OUT/meshes/<mesh_id>.obj                with --save-meshes
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from amodal3d.data.meshes import MeshSource, open_mesh_source, seed_from
from amodal3d.data.scene import SceneConfig, render_scene
from amodal3d.data.schema import dataset_json
from amodal3d.errors import DataError
from amodal3d.io import atomic_save_image, atomic_write_bytes, atomic_write_json, remove_temporaries

MAX_OBJECTS_PER_IMAGE = 100  # annotation id = image_id * 100 + k


@dataclass(frozen=True)
class GenerateConfig:
    out: str
    splits: dict[str, int]
    seed: int = 0
    shapes: str = "procedural"
    shapes_split: str | None = None  # every mesh of a --shapes folder in this split
    shard_size: int = 50
    save_meshes: bool = False
    scene: SceneConfig = field(default_factory=SceneConfig)

    def fingerprint(self) -> dict:
        """What must match for a run to resume into an existing ``out``."""
        config = asdict(self)
        config.pop("out")
        if config["shapes_split"] is None:  # datasets generated before the option resume unchanged
            config.pop("shapes_split")
        config["scene"] = {k: list(v) if isinstance(v, tuple) else v for k, v in config["scene"].items()}
        return config


def parse_splits(text: str) -> dict[str, int]:
    """``"train=8000,val=500,test=1000"`` -> ``{"train": 8000, "val": 500, "test": 1000}``."""
    splits = {}
    for item in text.split(","):
        name, _, count = item.partition("=")
        if not name.strip() or not count.strip().isdigit():
            raise DataError(f"--split: expected NAME=COUNT[,NAME=COUNT...], got {item!r}")
        splits[name.strip()] = int(count)
    return splits


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    start: int   # first image index (0-based) of the split in this shard
    stop: int

    def part_path(self, out: Path) -> Path:
        return out / "annotations" / "parts" / self.split / f"{self.index:05d}.json"


def plan_shards(config: GenerateConfig) -> list[Shard]:
    shards = []
    for split, count in config.splits.items():
        for index, start in enumerate(range(0, count, config.shard_size)):
            shards.append(Shard(split, index, start, min(start + config.shard_size, count)))
    return shards


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: depends on (seed, split, index) only, not on the worker."""
    return np.random.default_rng([seed, seed_from(split), index])


def render_shard(shard: Shard, config: GenerateConfig, source: MeshSource) -> dict:
    """Render and write the images of one shard, then its annotation part (last, atomically)."""
    out = Path(config.out)
    images, annotations = [], []
    for index in range(shard.start, shard.stop):
        image_id = index + 1
        scene = render_scene(image_rng(config.seed, shard.split, index), source, shard.split, config.scene)
        file_name = f"{image_id:06d}.png"
        atomic_save_image(Image.fromarray(scene.image), out / "images" / shard.split / file_name)
        images.append({"id": image_id, "file_name": file_name, "width": config.scene.size,
                       "height": config.scene.size, "camera": scene.camera})
        for k, ann in enumerate(scene.annotations):
            annotations.append({"id": image_id * MAX_OBJECTS_PER_IMAGE + k + 1, "image_id": image_id, **ann})
        if config.save_meshes:
            for mesh_id, mesh in scene.meshes.items():
                path = out / "meshes" / f"{mesh_id}.obj"
                if not path.exists():
                    atomic_write_bytes(path, mesh.export(file_type="obj").encode())
    part = {"images": images, "annotations": annotations}
    atomic_write_json(shard.part_path(out), part)
    return {"split": shard.split, "images": len(images)}


_WORKER: dict = {}


def _init_worker(config: GenerateConfig) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["config"] = config
    _WORKER["source"] = open_mesh_source(config.shapes, seed=config.seed, only_split=config.shapes_split)


def _run_shard(shard: Shard) -> dict:
    return render_shard(shard, _WORKER["config"], _WORKER["source"])


def check_fingerprint(config: GenerateConfig) -> None:
    """Record the arguments in ``OUT/generation.json``; refuse to resume with different ones."""
    path = Path(config.out) / "generation.json"
    fingerprint = config.fingerprint()
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from None
        # Splits may grow or be added; every other argument must be the same.
        same = {k: v for k, v in previous.items() if k != "splits"} == \
               {k: v for k, v in fingerprint.items() if k != "splits"}
        if not same:
            raise DataError(f"{path}: {config.out} was generated with other arguments ({previous}); "
                            "use the same arguments to resume, or another --out")
        fingerprint["splits"] = {**previous.get("splits", {}), **fingerprint["splits"]}
    atomic_write_json(path, fingerprint, indent=2)


def remove_stale_temporaries(out: Path, shards: list[Shard], everything: bool) -> None:
    """Delete the temporaries that killed runs left of the files of ``shards`` (images, parts), of which
    this run is the one writer; with ``everything`` (a run that owns all shards) those of the split files,
    ``generation.json`` and the meshes too. Other runs of a cluster may be writing those at the moment."""
    for split in {s.split for s in shards}:
        mine = [s for s in shards if s.split == split]
        remove_temporaries(out / "images" / split, (f"{i + 1:06d}.png" for s in mine for i in range(s.start, s.stop)))
        remove_temporaries(out / "annotations" / "parts" / split, (s.part_path(out).name for s in mine))
    if everything:
        for folder in (out, out / "annotations", out / "meshes"):
            remove_temporaries(folder)


def merge_split(out: Path, split: str, shards: list[Shard], config: GenerateConfig) -> Path | None:
    """Write ``annotations/<split>.json`` from the parts when every shard of the split is done."""
    parts = [s.part_path(out) for s in shards if s.split == split]
    if not all(p.exists() for p in parts):
        return None
    images, annotations = [], []
    for path in parts:
        part = json.loads(path.read_text())
        images += part["images"]
        annotations += part["annotations"]
    info = {"description": f"amodal3d synthetic amodal dataset, split {split}",
            "generator": {k: v for k, v in config.fingerprint().items()}}
    return atomic_write_json(out / "annotations" / f"{split}.json", dataset_json(images, annotations, info))


def generate(config: GenerateConfig, workers: int = 1, shard: tuple[int, int] = (0, 1),
             progress: bool = True) -> dict[str, Path | None]:
    """Generate (or resume) the dataset. ``shard=(i, n)`` renders only shards ``k`` with ``k % n == i``
    (one part per machine of a cluster); the split files are merged by whichever run finds every
    shard done. Returns the annotation file of each split, or None where shards are missing."""
    others = sorted(set(config.splits) - {config.shapes_split}) if config.shapes_split else []
    if others:
        raise DataError(f"--shapes-split {config.shapes_split} puts every mesh in {config.shapes_split}: "
                        f"split(s) {', '.join(others)} would have none; generate {config.shapes_split} only")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    check_fingerprint(config)
    # fail early and clearly on a bad --shapes
    open_mesh_source(config.shapes, seed=config.seed, only_split=config.shapes_split)
    shards = plan_shards(config)
    mine = [s for k, s in enumerate(shards) if k % shard[1] == shard[0]]
    remove_stale_temporaries(out, mine, everything=shard[1] == 1)
    todo = [s for s in mine if not s.part_path(out).exists()]
    total = sum(s.stop - s.start for s in todo)
    with tqdm(total=total, unit="img", desc="generate", disable=not progress) as bar:
        if workers <= 1:
            _init_worker(config)
            for item in todo:
                bar.update(_run_shard(item)["images"])
        else:
            context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
                for done in pool.imap_unordered(_run_shard, todo):
                    bar.update(done["images"])
    return {split: merge_split(out, split, shards, config) for split in config.splits}
