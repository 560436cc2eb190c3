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
import numbers
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from amodal3d.data.meshes import MeshSource, open_mesh_source, seed_from
from amodal3d.data.scene import SceneConfig, render_scene
from amodal3d.data.schema import dataset_json
from amodal3d.errors import DataError, MeshError
from amodal3d.io import _TEMPORARY, atomic_save_image, atomic_write_bytes, atomic_write_json, remove_temporaries
from amodal3d.paths import check_output_dir, check_regular_file, check_split_name, lies_inside

MAX_OBJECTS_PER_IMAGE = 100  # annotation id = image_id * 100 + k
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 4096  # pixels: smaller scenes lose their objects, larger ones the memory
SEED_MAX = 2**32 - 1  # numpy seeds are unsigned 32-bit words
RECORD = "generation.json"  # OUT/generation.json: the arguments of the run that generated OUT


def _check_whole(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or \
            (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise DataError(f"{name}: expected a whole number {bounds}, got {value!r}")


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

    def __post_init__(self) -> None:
        """Refuse what would write outside ``out`` (a split name such as ``../x``) or fail later."""
        if not isinstance(self.splits, dict) or not self.splits:
            raise DataError(f"--split: expected NAME=COUNT[,NAME=COUNT...], got {self.splits!r}")
        for name, count in self.splits.items():
            check_split_name(name, "--split")
            _check_whole(f"--split {name}", count, 1)
        if self.shapes_split is not None:
            check_split_name(self.shapes_split, "--shapes-split")
        _check_whole("--seed", self.seed, 0, SEED_MAX)
        _check_whole("--shard-size", self.shard_size, 1)
        _check_whole("--size", self.scene.size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        low, high = self.scene.min_objects, self.scene.max_objects
        _check_whole("--objects", low, 1, MAX_OBJECTS_PER_IMAGE)
        _check_whole("--objects", high, 1, MAX_OBJECTS_PER_IMAGE)
        if low > high:
            raise DataError(f"--objects: expected MIN <= MAX, got {low}-{high}")

    def fingerprint(self) -> dict:
        """What must match for a run to resume into an existing ``out``."""
        config = asdict(self)
        config.pop("out")
        if config["shapes_split"] is None:  # datasets generated before the option resume unchanged
            config.pop("shapes_split")
        config["scene"] = {k: list(v) if isinstance(v, tuple) else v for k, v in config["scene"].items()}
        return config


_COUNT = re.compile(r"[0-9]+")


def parse_splits(text: str) -> dict[str, int]:
    """``"train=8000,val=500,test=1000"`` -> ``{"train": 8000, "val": 500, "test": 1000}``. Each name is
    a plain name (:func:`amodal3d.paths.check_split_name`), given once, with a COUNT >= 1."""
    splits = {}
    for item in text.split(","):
        name, equals, count = (part.strip() for part in item.partition("="))
        if not equals or not _COUNT.fullmatch(count):
            raise DataError(f"--split: expected NAME=COUNT[,NAME=COUNT...], got {item!r}")
        check_split_name(name, "--split")
        if name in splits:
            raise DataError(f"--split: split {name} is given twice")
        if int(count) < 1:
            raise DataError(f"--split: {name}={count}: COUNT must be at least 1")
        splits[name] = int(count)
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


# fingerprint key -> the option that sets it, for messages
_OPTIONS = {"seed": "--seed", "shapes": "--shapes", "shapes_split": "--shapes-split", "shard_size": "--shard-size",
            "save_meshes": "--save-meshes", "scene.size": "--size", "scene.min_objects": "--objects MIN",
            "scene.max_objects": "--objects MAX"}


def _flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _differences(previous: dict, current: dict) -> list[str]:
    """``name: old -> new`` for each setting (splits aside) that differs between two fingerprints."""
    old = _flatten({k: v for k, v in previous.items() if k != "splits"})
    new = _flatten({k: v for k, v in current.items() if k != "splits"})
    return [f"{_OPTIONS.get(key, key)}: {old.get(key, '(none)')} -> {new.get(key, '(none)')}"
            for key in sorted(old.keys() | new.keys(), key=lambda k: (k.count("."), k)) if old.get(key) != new.get(key)]


def _first_file(folder: Path) -> Path | None:
    """The first file under ``folder`` (sorted walk) that is not a temporary of a killed writer."""
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if not _TEMPORARY.fullmatch(name):
                return Path(root) / name
    return None


def read_record(path: Path) -> dict:
    """The fingerprint that an earlier run wrote to ``OUT/generation.json``."""
    check_regular_file(path)
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(previous, dict) or not isinstance(previous.get("splits", {}), dict):
        raise DataError(f"{path}: not the record of an amodal3d generate run (a JSON object with 'splits')")
    return previous


def check_fingerprint(config: GenerateConfig) -> None:
    """Record the arguments in ``OUT/generation.json``; refuse to resume with different ones. A record
    whose run wrote no image and no shard yet (it failed before its first image) is replaced."""
    out = Path(config.out)
    path = out / RECORD
    fingerprint = config.fingerprint()
    if path.exists() or path.is_symlink():
        previous = read_record(path)
        # Splits may grow or be added; every other argument must be the same.
        differences = _differences(previous, fingerprint)
        if not differences:
            fingerprint["splits"] = {**previous.get("splits", {}), **fingerprint["splits"]}
        elif _first_file(out / "images") or _first_file(out / "annotations"):
            raise DataError(f"{path}: {out} was generated with other arguments ({', '.join(differences)}); "
                            "use the same arguments to resume, or another --out")
    atomic_write_json(path, fingerprint, indent=2)


def check_out(config: GenerateConfig, source: MeshSource) -> None:
    """Before anything is written: ``OUT`` and the folders and files the run writes in it can be written,
    ``OUT`` does not hold another dataset (files and no record of an earlier run), is not in the
    ``--shapes`` folder, and the mesh source has meshes in each split."""
    out = Path(config.out)
    mesh_root = None if source.kind == "procedural" else source.root
    check_output_dir(out, [mesh_root] if mesh_root else [])
    if mesh_root is not None and lies_inside(out, mesh_root):
        raise DataError(f"--out: {out} lies inside the --shapes folder {mesh_root}: refused (give another --out)")
    if mesh_root is not None and config.save_meshes and lies_inside(mesh_root, out / "meshes"):
        raise DataError(f"--shapes: {mesh_root} lies inside {out / 'meshes'}, where --save-meshes writes: refused")
    empty = [s for s in config.splits if not source.categories_in(s)]
    if empty:
        raise MeshError(f"{config.shapes}: no meshes in split(s) {', '.join(empty)} (a mesh's split is a hash of "
                        f"its path: train 80 %, val 5 %, test 15 %; --shapes-split SPLIT puts every mesh in SPLIT)")
    folders = [out / "annotations", out / "annotations" / "parts", out / "images"]
    for split in config.splits:
        folders += [out / "images" / split, out / "annotations" / "parts" / split]
        if (out / "annotations" / f"{split}.json").is_dir():
            raise DataError(f"--out: {out / 'annotations' / f'{split}.json'} is a folder: refused")
    for folder in folders + ([out / "meshes"] if config.save_meshes else []):
        check_output_dir(folder)
    if not (out / RECORD).exists() and not (out / RECORD).is_symlink():
        for folder in ("annotations", "images", *(["meshes"] if config.save_meshes else [])):
            found = _first_file(out / folder)
            if found is not None:
                raise DataError(f"{found}: {out} holds files that no amodal3d generate run recorded (no {RECORD}); "
                                f"they could be overwritten: refused (give another --out)")


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
        try:
            part = json.loads(check_regular_file(path).read_text(encoding="utf-8"))
            images += part["images"]
            annotations += part["annotations"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{path}: not a shard written by amodal3d generate ({type(error).__name__}: {error}); "
                            f"delete it to render the shard again") from None
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
    # fail early and clearly on a bad --shapes or --out, before the record of this run is written
    source = open_mesh_source(config.shapes, seed=config.seed, only_split=config.shapes_split)
    check_out(config, source)
    out.mkdir(parents=True, exist_ok=True)
    check_fingerprint(config)
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
