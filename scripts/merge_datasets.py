"""Merge one split of several amodal3d datasets into one dataset folder, e.g. two procedural training
sets generated with different seeds (each seed draws its own pool of training meshes, so the merge has
twice as many meshes per category).

    python scripts/merge_datasets.py OUT DATA1 DATA2 [...] [--split train]

Images are hard-linked where the file system allows it (copied otherwise) as ``k_<file_name>`` for the
k-th source; image and annotation ids are renumbered so that they stay unique; mesh ids are prefixed
with ``k/`` so that equal ids of different sources stay distinct meshes. The annotation file is written
atomically; ``amodal3d validate OUT`` checks the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from amodal3d.io import atomic_write_json


def merge(out: Path, sources: list[Path], split: str = "train") -> dict:
    """Merge ``split`` of ``sources`` into ``out``; returns the merged annotation dict."""
    image_dir = out / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    merged: dict | None = None
    next_image, next_annotation = 1, 1
    for k, source in enumerate(sources):
        path = source / "annotations" / f"{split}.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no such annotation file")
        data = json.loads(path.read_text())
        new_image_id = {}
        for image in data["images"]:
            name = f"{k}_{image['file_name']}"
            target = image_dir / name
            if not target.exists():
                try:
                    os.link(source / "images" / split / image["file_name"], target)
                except OSError:
                    shutil.copyfile(source / "images" / split / image["file_name"], target)
            new_image_id[image["id"]] = next_image
            image.update(id=next_image, file_name=name)
            next_image += 1
        for annotation in data["annotations"]:
            annotation.update(id=next_annotation, image_id=new_image_id[annotation["image_id"]])
            if "mesh_id" in annotation:
                annotation["mesh_id"] = f"{k}/{annotation['mesh_id']}"
            next_annotation += 1
        if merged is None:
            merged = data
            merged["info"] = {**data.get("info", {}), "merged_from": []}
        elif data["categories"] != merged["categories"]:
            raise SystemExit(f"{path}: its categories differ from those of {sources[0]}")
        else:
            merged["images"] += data["images"]
            merged["annotations"] += data["annotations"]
        merged["info"]["merged_from"].append({"data": str(source), "images": len(data["images"]),
                                              "generator": data.get("info", {}).get("generator")})
    merged["info"]["description"] = f"split {split} of {len(sources)} merged datasets"
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "annotations" / f"{split}.json", merged)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("sources", type=Path, nargs="+")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    merged = merge(args.out, args.sources, args.split)
    print(f"{args.out}: {len(merged['images'])} images, {len(merged['annotations'])} annotations")


if __name__ == "__main__":
    main()
