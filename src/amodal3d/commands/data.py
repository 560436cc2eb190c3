"""Data engine commands: shapes, generate, validate, show, convert."""

from __future__ import annotations

import argparse
from pathlib import Path

from amodal3d import CATEGORY_NAMES
from amodal3d.commands.arguments import checked, int_range, non_negative_int, positive_int, seed, split_name
from amodal3d.errors import DataError
from amodal3d.paths import check_output_file, check_regular_file

MAX_WORKERS = 1024


def add_mesh_source_arguments(p) -> None:
    """``--shapes`` and ``--shapes-split``: where the meshes of generated scenes come from."""
    p.add_argument("--shapes", default="procedural", help="'procedural' or a ShapeNetCore / mesh folder")
    p.add_argument("--shapes-split", type=split_name, default=None, metavar="SPLIT",
                   help="put every mesh of the --shapes folder in SPLIT (a collection for evaluation only); "
                        "default: a hash of each mesh's path splits them 80/5/15 into train/val/test")


def register(sub, train_sub) -> None:
    p = sub.add_parser("shapes", help="contact sheet of generated (or loaded) meshes of a category")
    p.add_argument("--category", required=True, choices=CATEGORY_NAMES)
    p.add_argument("--n", type=positive_int, default=16, help="number of meshes")
    add_mesh_source_arguments(p)
    p.add_argument("--split", type=split_name, default=None,
                   help="split whose meshes to show (default: --shapes-split, or train)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default="shapes.png", help="PNG to write")
    p.set_defaults(handler=cmd_shapes)

    p = sub.add_parser("generate", help="generate a synthetic amodal dataset (resumable, sharded)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--split", type=checked(_splits, "--split"), default="train=8000,val=500,test=1000",
                   help="NAME=COUNT,...")
    p.add_argument("--size", type=_image_size, default=256, help="image width = height in pixels (32 to 4096)")
    p.add_argument("--objects", type=checked(_objects, "--objects"), default="2-4",
                   help="objects per scene, MIN-MAX (1 to 100)")
    p.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=2)
    p.add_argument("--seed", type=seed, default=0)
    add_mesh_source_arguments(p)
    p.add_argument("--shard", type=checked(_shard, "--shard"), default="0/1",
                   help="i/n: render only every n-th shard from i (cluster use)")
    p.add_argument("--shard-size", type=positive_int, default=50, help="images per resumable shard")
    p.add_argument("--save-meshes", action="store_true", help="also write each mesh used as OBJ")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("validate", help="check every invariant of a dataset; non-zero exit on any violation")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--split", type=split_name, action="append", help="split to check (repeatable; default all)")
    p.add_argument("--no-images", action="store_true", help="skip opening the image files")
    p.add_argument("--max-report", type=non_negative_int, default=50, help="violations printed at most")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("show", help="grid of images with visible (solid) and hidden (hatched) parts")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--split", type=split_name, default="test")
    p.add_argument("--n", type=positive_int, default=16, help="images drawn at most")
    p.add_argument("--columns", type=positive_int, default=4)
    p.add_argument("--out", default="grid.png")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("convert", help="convert COCOA (native), KINS or D2SA/COCOA-cls to the amodal3d schema")
    p.add_argument("source", help="annotation JSON, or a folder of native COCOA per-image JSON files")
    p.add_argument("--format", default="auto", choices=["auto", "cocoa", "kins", "d2sa"])
    p.add_argument("--class-agnostic", action="store_true", help="one category 'object'")
    p.add_argument("--out", required=True, help="JSON to write")
    p.set_defaults(handler=cmd_convert)


def cmd_shapes(args) -> int:
    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.preview import contact_sheet

    out = check_output_file(args.out, [] if args.shapes == "procedural" else [args.shapes])
    source = open_mesh_source(args.shapes, seed=args.seed, only_split=args.shapes_split)
    split = args.split or args.shapes_split or "train"
    ids = source.mesh_ids(args.category, split)[: args.n]
    if not ids:
        raise DataError(f"{args.shapes}: no {args.category} meshes in split {split}")
    meshes = [source.load(i) for i in ids]
    labels = [f"{i.rsplit('/', 1)[-1]} {m.metadata.get('variant', '')}" for i, m in zip(ids, meshes)]
    print(contact_sheet(meshes, labels, out))
    return 0


def parse_range(text: str, name: str, high: int | None = None) -> tuple[int, int]:
    """``"MIN-MAX"`` (or ``"N"``) -> ``(MIN, MAX)`` with ``1 <= MIN <= MAX`` (``<= high``)."""
    low, _, top = text.partition("-")
    try:
        low_i, high_i = int(low), int(top or low)
    except ValueError:
        raise DataError(f"{name}: expected MIN-MAX, got {text!r}") from None
    if not 1 <= low_i <= high_i or (high is not None and high_i > high):
        raise DataError(f"{name}: expected 1 <= MIN <= MAX{f' <= {high}' if high is not None else ''}, "
                        f"got {text!r}")
    return low_i, high_i


def _splits(text: str) -> dict[str, int]:
    from amodal3d.data.generate import parse_splits

    return parse_splits(text)


def _image_size(text: str) -> int:
    from amodal3d.data.generate import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

    return int_range(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)(text)


def _objects(text: str) -> tuple[int, int]:
    from amodal3d.data.generate import MAX_OBJECTS_PER_IMAGE

    return parse_range(text, "--objects", MAX_OBJECTS_PER_IMAGE)


def _shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise DataError(f"--shard: expected i/n with 0 <= i < n, got {text!r}")
    return index, count


def cmd_generate(args) -> int:
    from amodal3d.data.generate import GenerateConfig, generate
    from amodal3d.data.scene import SceneConfig

    (lo, hi), (index, count) = args.objects, args.shard
    config = GenerateConfig(out=args.out, splits=args.split, seed=args.seed, shapes=args.shapes,
                            shapes_split=args.shapes_split,
                            shard_size=args.shard_size, save_meshes=args.save_meshes,
                            scene=SceneConfig(size=args.size, min_objects=lo, max_objects=hi))
    files = generate(config, workers=args.workers, shard=(index, count), progress=not args.quiet)
    for split, path in files.items():
        print(f"{split}: {path if path else 'shards still missing (other --shard runs)'}")
    return 0


def cmd_validate(args) -> int:
    from amodal3d.data.validate import validate_dataset

    splits, violations = validate_dataset(args.data, args.split, check_images=not args.no_images)
    for v in violations[: args.max_report]:
        print(v)
    if len(violations) > args.max_report:
        print(f"... and {len(violations) - args.max_report} more")
    print(f"{args.data}: splits {', '.join(splits)}: {len(violations)} violation(s)")
    return 1 if violations else 0


def cmd_show(args) -> int:
    from amodal3d.data.dataset import AmodalDataset, split_paths
    from amodal3d.visualize import grid, overlay

    out = check_output_file(args.out, split_paths(args.data, args.split))
    dataset = AmodalDataset(args.data, args.split)
    tiles = []
    for i in range(min(args.n, len(dataset))):
        image, target = dataset[i]
        array = (image.permute(1, 2, 0).numpy() * 255).astype("uint8")
        tiles.append(overlay(array, target["visible_masks"].bool().numpy(), target["amodal_masks"].bool().numpy(),
                             [dataset.taxonomy.name_of(int(c)) for c in target["labels"]]))
    if not tiles:
        raise DataError(f"{args.data}: split {args.split} has no images")
    grid(tiles, min(args.columns, len(tiles)), out)
    print(out)
    return 0


def cmd_convert(args) -> int:
    from amodal3d.data.readers import convert
    from amodal3d.io import atomic_write_json

    source = Path(args.source)
    if source.is_dir():  # a folder of native COCOA per-image JSON files (and their images)
        inputs = [source, *(check_regular_file(p) for p in sorted(source.glob("*.json")))]
    else:
        inputs = [check_regular_file(source)]
    out = check_output_file(args.out, inputs)
    data = convert(source, args.format, args.class_agnostic)
    atomic_write_json(out, data)
    print(f"{out}: {len(data['images'])} images, {len(data['annotations'])} instances, "
          f"{len(data['categories'])} categories")
    return 0
