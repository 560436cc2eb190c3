"""``amodal3d predict``: run the pipeline over image files, writing COCO results, overlays and meshes.

One image at a time (memory stays flat over long folders). Any failure of one image (unreadable,
malformed visible masks, an image step 1 cannot resize, an error inside the model) is reported by
name and the others still run; ``results.json`` always holds the images that succeeded, even when the
run stops part-way.

Outputs are named by each image's path relative to the folder all inputs share
(:func:`output_names`): ``predict a/ b/`` with ``a/x.png`` and ``b/x.png`` writes
``overlays/a/x.png`` and ``overlays/b/x.png``; the images of one folder give ``overlays/x.png``.
Nothing is written before every argument has been checked, and no output lands on an input."""

from __future__ import annotations

import json
import numbers
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from amodal3d.categories import DEFAULT, Taxonomy
from amodal3d.data.dataset import max_image_pixels, read_image
from amodal3d.data.readers import segmentation_mask
from amodal3d.data.schema import id_problem
from amodal3d.errors import Amodal3dError, DataError, WeightsError
from amodal3d.io import atomic_save_image, atomic_write_bytes, atomic_write_json
from amodal3d.masks import encode_rle, mask_to_bbox, xywh_to_xyxy
from amodal3d.occlusion import OcclusionPair, instance_order, occlusion_pairs
from amodal3d.paths import check_output_dir, check_regular_file
from amodal3d.structures import UNKNOWN_CATEGORY, GivenVisible
from amodal3d.visualize import overlay

if TYPE_CHECKING:
    from amodal3d.pipeline import PipelineOptions

MESH_FORMATS = ("none", "obj", "glb")
RESULTS = "results.json"


@dataclass(frozen=True)
class VisibleEntry:
    """One ``images`` entry of a ``--visible`` file: its id, ``file_name`` and annotations."""

    image_id: object
    file_name: str
    annotations: list[dict]

    def __str__(self) -> str:
        return f"image {self.image_id} ({self.file_name!r})"


def load_visible_json(path: str | Path, taxonomy: Taxonomy = DEFAULT) -> list[VisibleEntry]:
    """COCO JSON of visible masks -> one :class:`VisibleEntry` per image, in file order. Category ids
    are kept when the file's ``categories`` name them as the model's ``taxonomy`` does
    (:meth:`~amodal3d.categories.Taxonomy.names_ids_as`); otherwise (COCO, KINS, class-agnostic, none)
    each becomes ``UNKNOWN_CATEGORY``, for step 1's crop head to name (or, for a model of one category,
    class-agnostic, that category). :func:`match_visible` pairs the entries with the input images."""
    path = check_regular_file(path, "--visible")
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{path}: expected a COCO file with 'images' and 'annotations'")
    entries: dict[object, VisibleEntry] = {}
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or isinstance(image.get("id"), (dict, list)) or image.get("id") is None:
            raise DataError(f"{path}: images[{k}] is not an entry with an 'id'")
        name = image.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{path}: image {image['id']}: 'file_name' must be a non-empty string, got {name!r}")
        if image["id"] in entries:
            raise DataError(f"{path}: image id {image['id']} appears twice in 'images'")
        entries[image["id"]] = VisibleEntry(image["id"], name, [])
    ours = taxonomy.names_ids_as(data.get("categories"))
    # masks of another taxonomy: step 1 names them, unless the model knows one category (class-agnostic)
    unnamed = taxonomy.ids[0] if len(taxonomy) == 1 else UNKNOWN_CATEGORY
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{path}: annotations[{k}] is not an object")
        image_id = ann.get("image_id")
        if isinstance(image_id, (dict, list)) or image_id not in entries:
            raise DataError(f"{path}: annotation {ann.get('id')} refers to unknown image {image_id!r}")
        problem = id_problem(ann, "category_id") if ours and "category_id" in ann else None
        if problem:
            raise DataError(f"{path}: annotation {ann.get('id')}: {problem}")
        entries[image_id].annotations.append(ann if ours else {**ann, "category_id": unnamed})
    return list(entries.values())


def _name_parts(file_name: str) -> tuple[str, ...]:
    """A ``file_name`` as path components, normalised (``./a//x.png`` -> ``('a', 'x.png')``)."""
    return Path(os.path.normpath(file_name.replace("\\", "/"))).parts


def match_visible(entries: list[VisibleEntry], paths: list[Path], source: str | Path) -> dict[int, VisibleEntry]:
    """Pair the ``--visible`` entries with the input images: an entry names an image when its
    ``file_name`` is a path suffix of the image's path (``x.png`` and ``a/x.png`` both name
    ``data/a/x.png``; ``b/x.png`` does not). Returns {index in ``paths``: entry}; an image no entry
    names is absent. DataError when one entry names two images or two entries name one image."""
    by_parts: dict[tuple[str, ...], list[VisibleEntry]] = defaultdict(list)
    for entry in entries:
        by_parts[_name_parts(entry.file_name)].append(entry)
    matched: dict[int, VisibleEntry] = {}
    owner: dict[int, int] = {}  # id(entry) -> index of the image it names
    for i, path in enumerate(paths):
        parts = Path(os.path.abspath(path)).parts
        found = [e for n in range(1, len(parts) + 1) for e in by_parts.get(parts[-n:], ())]
        if len(found) > 1:
            raise DataError(f"{source}: {found[0]} and {found[1]} both name the input {path}: ambiguous")
        if not found:
            continue
        entry = found[0]
        if id(entry) in owner:
            raise DataError(f"{source}: {entry} names two inputs, {paths[owner[id(entry)]]} and {path}: "
                            f"ambiguous (give file_name the folders that tell them apart)")
        owner[id(entry)] = i
        matched[i] = entry
    return matched


def given_from_annotations(anns: list[dict], height: int, width: int, source: str,
                           taxonomy: Taxonomy = DEFAULT) -> GivenVisible:
    """The visible masks of one image's ``--visible`` annotations, labelled in the model's ``taxonomy``
    (a category id it lacks is a DataError; ``UNKNOWN_CATEGORY`` stays, for step 1 to name)."""
    masks = [segmentation_mask(ann.get("visible_segm", ann.get("segmentation")), height, width,
                               f"{source}: annotation {ann.get('id')}") for ann in anns]
    visible = np.stack(masks) if masks else np.zeros((0, height, width), bool)
    boxes = np.array([xywh_to_xyxy(mask_to_bbox(m)) for m in visible], np.float32).reshape(-1, 4)
    labels = []
    for ann in anns:
        category = ann.get("category_id", UNKNOWN_CATEGORY)
        if isinstance(category, bool) or not isinstance(category, numbers.Integral):
            raise DataError(f"{source}: annotation {ann.get('id')}: category_id must be a whole number, "
                            f"got {category!r}")
        labels.append(int(category))
    unknown = sorted({c for c in labels if c != UNKNOWN_CATEGORY and c not in taxonomy.ids})
    if unknown:
        raise DataError(f"{source}: given visible masks: category id(s) {unknown} unknown to this model (its "
                        f"{taxonomy.describe()})")
    labels = [c if c == UNKNOWN_CATEGORY else taxonomy.label_of(c) for c in labels]
    return GivenVisible(visible, np.array(labels, np.int64), boxes)


def output_names(paths: list[Path]) -> list[str]:
    """The name each image's outputs take (``overlays/NAME.png``, ``meshes/NAME_K.obj``): its path
    relative to the folder all ``paths`` share, without its suffix (with it where two images differ by
    suffix only: ``x.png`` and ``x.jpg`` -> ``x.png``, ``x.jpg``), POSIX separators."""
    if not paths:
        return []
    absolute = [Path(os.path.abspath(p)) for p in paths]
    common = Path(os.path.commonpath([str(a.parent) for a in absolute]))
    relative = [a.relative_to(common) for a in absolute]
    names = [r.with_suffix("").as_posix() for r in relative]
    sharing: dict[str, set[str]] = defaultdict(set)  # casefold: x.png and X.PNG are one file on some systems
    for r, name in zip(relative, names):
        sharing[name.casefold()].add(r.as_posix().casefold())
    names = [r.as_posix() if len(sharing[n.casefold()]) > 1 else n for r, n in zip(relative, names)]
    seen: dict[str, int] = defaultdict(int)
    unique = []
    for name in names:  # the same file given twice (or x.png beside x.png.png): numbered
        seen[name.casefold()] += 1
        unique.append(name if seen[name.casefold()] == 1 else f"{name}~{seen[name.casefold()]}")
    return unique


def _entry(path: Path) -> str:
    """The directory entry ``path`` names: its folder with links resolved, then its own name (files
    are written by renaming a temporary onto that entry, so a link in the last place is replaced,
    not followed)."""
    path = Path(os.path.abspath(path))
    return os.path.join(os.path.realpath(path.parent), path.name)


def check_outputs(out: Path, paths: list[Path], names: list[str], overlays: bool, meshes: str,
                  visible_json: str | Path | None) -> None:
    """``out`` is a folder that can be written and none of the files predict writes there
    (``results.json``, ``overlays/NAME.png``, ``meshes/NAME_K.EXT``) would replace an input (an image,
    the ``--visible`` file), whatever path names it."""
    inputs = [*paths, *([Path(visible_json)] if visible_json else [])]
    check_output_dir(out, inputs)
    by_entry = {_entry(source): source for source in inputs}
    planned = [out / RESULTS] + ([out / "overlays" / f"{n}.png" for n in names] if overlays else [])
    for target in planned:
        if (source := by_entry.get(_entry(target))) is not None:
            raise Amodal3dError(f"--out: {out} would overwrite the input {source} (with {target}): refused; "
                                f"choose another --out")
    if meshes != "none":  # meshes/NAME_K.EXT, K = 0, 1, ...
        mesh_dir, known = Path(os.path.realpath(out / "meshes")), set(names)
        for entry, source in by_entry.items():
            if Path(entry).is_relative_to(mesh_dir):
                match = re.fullmatch(rf"(.+)_\d+\.{meshes}", Path(entry).relative_to(mesh_dir).as_posix())
                if match and match.group(1) in known:
                    raise Amodal3dError(f"--out: {out} would overwrite the input {source} (a mesh): refused; "
                                        f"choose another --out")


def _failure(path: Path, error: BaseException) -> str:
    """One line naming the image and what went wrong (the exception's type unless it is ours)."""
    if isinstance(error, Amodal3dError):
        message = str(error)
    else:
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    message = " ".join(message.split())  # one line
    return message if message.startswith(str(path)) else f"{path}: {message}"


def category_name(label: int, taxonomy: Taxonomy = DEFAULT) -> str:
    """The name of a model label (1-based) in ``taxonomy``; the number itself outside it."""
    return taxonomy.name_of(label)


def category_id(label: int, taxonomy: Taxonomy = DEFAULT) -> int:
    """The dataset category id of a model label (1-based) in ``taxonomy``; the number itself outside it."""
    return taxonomy.id_of(label) if 1 <= int(label) <= len(taxonomy) else int(label)


def _label(category: int, score: float, taxonomy: Taxonomy = DEFAULT) -> str:
    return f"{category_name(category, taxonomy)} {score:.2f}"


def result_entries(instances, image_id: int, file_name: str, taxonomy: Taxonomy = DEFAULT, *,
                   pairs: list[OcclusionPair] | None = None) -> list[dict]:
    """The COCO results entries (``results.json``) of one image's :class:`Instances`, each label as its
    category id in the model's ``taxonomy``, with the occlusion order (``instance``, ``depth_layer``,
    ``occlusion_order``: :func:`amodal3d.occlusion.instance_order` of ``pairs``, computed from the masks
    when not given); with the masks continued past the border (``canvas_margin``), also
    ``amodal_canvas``, ``canvas_offset`` (x, y) and ``canvas_size`` (h, w)."""
    if pairs is None:
        pairs = occlusion_pairs(instances.visible_masks, instances.amodal_masks,
                                soft=instances.extras.get("amodal_probs"))
    order = instance_order(len(instances.labels), pairs)
    entries = []
    for k in range(len(instances.labels)):
        amodal, visible = instances.amodal_masks[k], instances.visible_masks[k]
        entries.append({"image_id": image_id, "file_name": file_name,
                        "category_id": category_id(int(instances.labels[k]), taxonomy),
                        "score": round(float(instances.scores[k]), 5), "bbox": mask_to_bbox(amodal),
                        "segmentation": encode_rle(amodal), "visible_segmentation": encode_rle(visible),
                        "viewpoint": instances.extras["viewpoints"][k], **order[k]})
        if "amodal_canvas" in instances.extras:
            canvas = instances.extras["amodal_canvas"][k]
            top, left = instances.extras["canvas_offset"]
            entries[-1].update(amodal_canvas=encode_rle(canvas), canvas_offset=[int(left), int(top)],
                               canvas_size=[int(canvas.shape[0]), int(canvas.shape[1])])
    return entries


def mesh_bytes(verts: np.ndarray, faces: np.ndarray, file_type: str) -> bytes:
    """One mesh as an ``obj`` or ``glb`` file's bytes."""
    import trimesh

    blob = trimesh.Trimesh(verts, faces, process=False).export(file_type=file_type)
    return blob if isinstance(blob, bytes) else blob.encode()


def predict_files(paths: list[Path], out: Path, weights: str = "cpu-small", options: PipelineOptions | None = None,
                  *, visible_json: str | None = None, meshes: str = "none", overlays: bool = True,
                  progress: bool = True, **changes) -> dict:
    """Run the pipeline of ``weights`` set up by ``options`` (default :class:`PipelineOptions`, with any
    field given by keyword replaced) over ``paths`` into ``out`` (``results.json``, ``overlays/``, ``meshes/``).

    Every argument, the output folder and the ``--visible`` file are checked before the model is
    loaded and before anything is written (ValueError / :class:`Amodal3dError`). Then each image runs
    on its own: a failure is recorded in ``failed`` ((path, one-line reason)) and the next image runs.
    ``results.json`` (the images that succeeded) is written even when the run stops part-way.
    Returns {"images": succeeded, "instances": results written, "failed": [(path, reason)]}."""
    from amodal3d.pipeline import AmodalSegmenter, PipelineOptions, pipeline_taxonomy

    options = (options if options is not None else PipelineOptions()).replace(**changes)
    if meshes not in MESH_FORMATS:
        raise ValueError(f"meshes must be one of {', '.join(MESH_FORMATS)}, not {meshes!r}")
    out = Path(out)
    max_image_pixels()  # a bad AMODAL3D_MAX_PIXELS stops the run here, not once per image
    unique: dict[str, Path] = {}
    for path in paths:  # each image once
        unique.setdefault(os.path.abspath(path), Path(path))
    paths = list(unique.values())
    if visible_json is not None:
        check_regular_file(visible_json, "--visible")
    names = output_names(paths)
    check_outputs(out, paths, names, overlays, meshes, visible_json)
    taxonomy = pipeline_taxonomy(weights)  # the model's categories: read from its JSON, before any tensor
    given_entries = match_visible(load_visible_json(visible_json, taxonomy), paths, visible_json) \
        if visible_json else None

    segmenter = AmodalSegmenter.from_pretrained(weights, options)
    if given_entries is None and segmenter.detector is None:
        raise WeightsError(f"{weights}: no detector weights (step 1): pass visible masks with --visible")
    unknown = given_entries and any(a.get("category_id", UNKNOWN_CATEGORY) == UNKNOWN_CATEGORY
                                    for e in given_entries.values() for a in e.annotations)
    if unknown and (segmenter.detector is None or segmenter.detector.crop_head is None):
        raise WeightsError(f"{visible_json}: its category ids are not this model's (no 'categories' list naming "
                           f"them as amodal3d does): naming the masks takes step 1's crop head, and {weights} has "
                           f"none")
    out.mkdir(parents=True, exist_ok=True)
    results, failed, done = [], [], 0
    try:
        for image_id, (path, name) in enumerate(tqdm(list(zip(paths, names)), desc="predict", unit="img",
                                                     disable=not progress), start=1):
            try:
                image = read_image(path)
                given = None
                if given_entries is not None:
                    if image_id - 1 not in given_entries:
                        raise DataError(f"{path}: no entry in {visible_json} (no file_name is a path suffix "
                                        f"of it)")
                    given = given_from_annotations(given_entries[image_id - 1].annotations, *image.shape[:2],
                                                   str(visible_json), taxonomy)
                instances = segmenter.predict(image, given)
                entries = result_entries(instances, image_id, str(path), taxonomy)
                if meshes != "none":
                    for k, (verts, faces) in enumerate(instances.extras["meshes"]):
                        atomic_write_bytes(out / "meshes" / f"{name}_{k}.{meshes}", mesh_bytes(verts, faces, meshes))
                if overlays:
                    labels = [_label(int(c), float(s), taxonomy) for c, s in zip(instances.labels, instances.scores)]
                    atomic_save_image(overlay(image, instances.visible_masks, instances.amodal_masks, labels),
                                      out / "overlays" / f"{name}.png")
            except Exception as error:  # any failure of one image (MemoryError too): named, the next runs
                failed.append((str(path), _failure(path, error)))
                continue
            results += entries
            done += 1
    finally:  # the images done so far, also when the run stops part-way (Ctrl-C, a failing disk)
        atomic_write_json(out / RESULTS, results)
    return {"images": done, "instances": len(results), "failed": failed}
