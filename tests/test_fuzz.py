"""Fuzz test (issue 33): hypothesis corrupts valid inputs -- amodal3d annotation files, COCOA / KINS / D2SA
files, ``predict --visible`` files, training configs and exported-weights configs -- with non-finite and huge
numbers, wrong types, deleted keys, truncated / extended / altered RLE strings, bad polygon coordinates,
path-like names and duplicated entries. Every command run on them must either work or refuse: exit 2 with
ONE line ``amodal3d: error: ...`` naming the file it read; never a traceback, an exception other than
SystemExit out of ``main``, a native crash (checked in a child process), a file changed outside ``--out``,
or a results file left in ``--out`` by a refused run.

Each test draws its corruptions with ``st.data()`` as a list of :class:`Mutation` (printed compactly by
hypothesis on a failure: the reproduction is the base file of the test plus those edits); settings are
derandomized and bounded (``fuzz``). ``test_found_cases`` keeps the minimal reproductions the fuzzing found,
so that each stays checked whatever the derandomized draws happen to cover."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import amodal3d.pipeline
from amodal3d.cli import main
from amodal3d.data.schema import categories_json
from amodal3d.masks import encode_rle, rle_counts
from conftest import COCOA_TINY

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "amodal3d" / "weights" / "cpu-small"


def config_file(name: str) -> Path:
    """A shipped training config (the package's configs/, or configs/ of the checkout)."""
    found = [p for p in (ROOT / "src" / "amodal3d" / "configs" / name, ROOT / "configs" / name) if p.is_file()]
    assert found, f"no {name} in src/amodal3d/configs/ or configs/"
    return found[0]


def fuzz(examples: int):
    """Deterministic, bounded hypothesis settings (no example database written in the working folder)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------------ mutations
NON_FINITE = (math.nan, math.inf, -math.inf)
HUGE = (1e308, -1e308, 3e9, -3e9, 2**63, -(2**63), 2**64)
NUMBERS = (*NON_FINITE, *HUGE, -1, 0, 0.5)
WRONG_TYPES = ("x", "", "12", [], [1, 2], {}, {"a": 1}, None, True, False)
PATH_LIKE = ("../../x", "/etc/passwd", "a/b", "", "\x00", "a\x00b.png", "..", ".", "a\\b", "~/x", "C:\\x.png",
             "x" * 300, " ")
RLE_CHARACTERS = "".join(chr(c) for c in range(48, 112)) + "#p ~\x00\u00e9"  # '0'..'o' and a few outside
SEGMENTATION_KEYS = {"segmentation", "a_segm", "i_segm", "visible_mask", "invisible_mask", "amodal_segm",
                     "visible_segm", "occluder_segm"}
NAME_KEYS = {"file_name", "name", "url", "mesh_id", "split", "preset", "optimizer", "schedule", "heads",
             "box_targets", "supercategory", "kind", "format"}


@dataclasses.dataclass(frozen=True, repr=False)
class Mutation:
    """One edit of a JSON / YAML document: ``op`` at ``path`` (keys and list indices from the root)."""

    op: str          # set | delete | duplicate | truncate | extend | change
    path: tuple
    value: object = None

    def __repr__(self) -> str:
        return f"{self.op}({'/'.join(map(str, self.path))}{'' if self.value is None else f', {self.value!r}'})"


def _nodes(doc, path=()):
    """Every (path, value) below ``doc`` (the root excluded), depth first."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield (*path, key), value
        yield from _nodes(value, (*path, key))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass
class Index:
    """The paths of a document each kind of mutation applies to."""

    leaves: list
    numbers: list
    keys: list
    entries: list
    counts: list
    coordinates: list
    names: list

    @classmethod
    def of(cls, doc) -> Index:
        nodes = list(_nodes(doc))
        return cls(
            leaves=[p for p, v in nodes if not isinstance(v, (dict, list))] or [p for p, _ in nodes],
            numbers=[p for p, v in nodes if _is_number(v)],
            keys=[p for p, _ in nodes if isinstance(p[-1], str)],
            entries=[p for p, v in nodes if isinstance(p[-1], int) and isinstance(v, (dict, list))],
            counts=[p for p, v in nodes if p[-1] == "counts" and isinstance(v, str) and v],
            coordinates=[p for p, v in nodes if _is_number(v) and isinstance(p[-1], int)
                         and any(k in SEGMENTATION_KEYS for k in p if isinstance(k, str))],
            names=[p for p, v in nodes if isinstance(v, str) and p[-1] in NAME_KEYS])


@st.composite
def mutation(draw, index: Index, ops: tuple[str, ...] | None = None) -> Mutation:
    available = {"number": index.numbers, "type": index.leaves, "delete": index.keys, "duplicate": index.entries,
                 "rle": index.counts, "coordinate": index.coordinates, "name": index.names}
    kinds = [k for k in (ops or available) if available.get(k)]  # a kind named twice is drawn twice as often
    kind = draw(st.sampled_from(kinds))
    path = draw(st.sampled_from(available[kind]))
    if kind in ("number", "coordinate"):
        value = draw(st.sampled_from(NUMBERS if kind == "number" else (*NUMBERS, "12", None, True, [1])))
        return Mutation("set", path, value)
    if kind == "type":
        return Mutation("set", path, draw(st.sampled_from(WRONG_TYPES)))
    if kind == "name":
        return Mutation("set", path, draw(st.sampled_from(PATH_LIKE)))
    if kind in ("delete", "duplicate"):
        return Mutation(kind, path)
    op = draw(st.sampled_from(["truncate", "extend", "change", "list"]))
    if op == "truncate":
        return Mutation("truncate", path, draw(st.integers(0, 40)))
    if op == "extend":
        return Mutation("extend", path, draw(st.text(RLE_CHARACTERS, min_size=1, max_size=8)))
    if op == "change":
        return Mutation("change", path, (draw(st.integers(0, 40)), draw(st.sampled_from(RLE_CHARACTERS))))
    return Mutation("set", path, draw(st.lists(st.sampled_from([0, 1, 5, 100, 9216, -1, 2**31, 2**40]),
                                               max_size=6)))


def mutations(doc, ops: tuple[str, ...] | None = None, most: int = 2):
    return st.lists(mutation(Index.of(doc), ops), min_size=1, max_size=most)


def apply(doc, edits: list[Mutation]):
    """A deep copy of ``doc`` with the edits made (one whose path no longer exists is skipped)."""
    doc = copy.deepcopy(doc)
    for edit in edits:
        parent = doc
        try:
            for key in edit.path[:-1]:
                parent = parent[key]
            key = edit.path[-1]
            current = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if edit.op == "set":
            parent[key] = copy.deepcopy(edit.value)
        elif edit.op == "delete":
            del parent[key]
        elif edit.op == "duplicate":
            parent.append(copy.deepcopy(current))
        elif not isinstance(current, str):
            continue
        elif edit.op == "truncate":
            parent[key] = current[: edit.value]
        elif edit.op == "extend":
            parent[key] = current + edit.value
        elif edit.op == "change":
            at, character = edit.value
            at %= len(current)
            parent[key] = current[:at] + character + current[at + 1:]
    return doc


def compress_counts(runs: list[int]) -> str:
    """COCO's compressed RLE string of any run lengths (pycocotools' rleToString, which checks nothing)."""
    out = []
    for i, x in enumerate(runs):
        x -= runs[i - 2] if i > 2 else 0
        more = True
        while more:
            c, x = x & 0x1F, x >> 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))  # NaN / Infinity written as JSON extensions, as Python reads them
    return path


# ------------------------------------------------------------------------------------------------ running
@dataclasses.dataclass
class Outcome:
    code: object
    out: str
    err: str
    warnings: list


def run(argv: list[str]) -> Outcome:
    """``main(argv)`` in process: its exit code and what it printed (warnings count as stderr lines,
    as the command line would print them). Any exception but SystemExit propagates: a test failure."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)  # hidden on the command line too
        try:
            code = main(argv)
        except SystemExit as exit_info:
            code = exit_info.code
    shown = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
    return Outcome(code, out.getvalue(), err.getvalue(), shown)


def snapshot(*roots: Path, skip: Path | None = None) -> dict:
    """(kind, size, mtime_ns, sha256) of every file and folder under ``roots``, except under ``skip``."""
    state = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if skip is not None and (path == skip or skip in path.parents):
                continue
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            state[str(path)] = (path.is_dir(), info.st_size if digest else 0, info.st_mtime_ns if digest else 0,
                                digest)
    return state


class Example:
    """One example's folder: inputs under it, ``out`` its --out. ``check`` runs a command and asserts the
    promise; ``inputs`` (files or folders read but kept elsewhere) are snapshotted too."""

    def __init__(self, tmp_path: Path, inputs: tuple[Path, ...] = ()):
        self.root = Path(tempfile.mkdtemp(dir=tmp_path))
        self.out = self.root / "out"
        self.inputs = inputs

    def check(self, argv: list[str], allowed: set, named: Path | tuple[str, ...],
              results: tuple[Path, ...] = ()) -> Outcome:
        """Run ``argv``: exit code in ``allowed``; on exit 2 one line naming ``named`` (a path, or any of
        several strings), no file of ``results`` left; nothing changed outside ``self.out``."""
        before = snapshot(self.root, *self.inputs, skip=self.out)
        outcome = run(argv)
        after = snapshot(self.root, *self.inputs, skip=self.out)
        assert outcome.code in allowed, (outcome.code, outcome.err[-3000:], outcome.out[-2000:])
        assert "Traceback" not in outcome.err and "Traceback" not in outcome.out, outcome.err[-3000:]
        assert not outcome.warnings, f"exit {outcome.code} with warnings on stderr: {outcome.warnings}"
        if outcome.code == 2:
            lines = outcome.err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("amodal3d: error: "), outcome.err[-3000:]
            names = (str(named),) if isinstance(named, Path) else named
            assert any(name in lines[0] for name in names), f"the error names none of {names}: {lines[0]}"
            left = [p for p in results if p.exists()]
            assert not left, f"a refused run left {left}"
        changed = sorted(set(before) ^ set(after) | {k for k in before if k in after and before[k] != after[k]})
        assert not changed, f"files changed outside --out: {changed}"
        return outcome

    def clean(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base_test_json(tiny_dataset) -> dict:
    return json.loads((tiny_dataset / "annotations" / "test.json").read_text())


def _dataset(example: Example, tiny_dataset: Path, doc: dict) -> tuple[Path, tuple[str, str]]:
    """A copy of the tiny dataset's test split whose annotation file is ``doc``; what its errors may name:
    the annotation file, or an image file its entries point to (a missing one, say)."""
    root = example.root / "D"
    shutil.copytree(tiny_dataset / "images" / "test", root / "images" / "test")
    annotations = write_json(root / "annotations" / "test.json", doc)
    return root, (str(annotations), f"{root / 'images' / 'test'}{os.sep}")


def _visible_doc(base_test_json: dict) -> dict:
    """A --visible file (images a.png, b.png) holding the test split's visible masks of its first two
    images: RLE for the first image's, polygons for the second's."""
    images = base_test_json["images"][:2]
    annotations = []
    for k, image in enumerate(images):
        for ann in (a for a in base_test_json["annotations"] if a["image_id"] == image["id"]):
            x, y, w, h = ann["visible_bbox"]
            segmentation = ann["visible_segm"] if k == 0 else [[x, y, x + w, y, x + w, y + h, x, y + h]]
            annotations.append({"id": ann["id"], "image_id": k + 1, "category_id": ann["category_id"],
                                "segmentation": segmentation, "score": 1.0})
    return {"images": [{"id": 1, "file_name": "a.png", "width": 96, "height": 96},
                       {"id": 2, "file_name": "b.png", "width": 96, "height": 96}],
            "annotations": annotations, "categories": categories_json()}


SQUARE = [2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]


def _coco_style(kind: str) -> dict:
    """A small valid KINS (a_segm / i_segm) or D2SA (segmentation / visible_mask) file: two images, polygons
    and RLE, an occluded object."""
    amodal, visible = ("a_segm", "i_segm") if kind == "kins" else ("segmentation", "visible_mask")
    near = np.zeros((16, 16), bool)
    near[4:14, 6:16] = True
    far_visible = np.zeros((16, 16), bool)
    far_visible[2:12, 2:6] = True
    return {"images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 16},
                       {"id": 2, "file_name": "sub/b.png", "height": 16, "width": 20}],
            "categories": [{"id": 1, "name": "car", "supercategory": "vehicle"}, {"id": 2, "name": "person"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, amodal: encode_rle(near), visible: encode_rle(near),
                 "bbox": [6, 4, 10, 10], "area": 100, "iscrowd": 0, "ico_id": 1},
                {"id": 2, "image_id": 1, "category_id": 2, amodal: [SQUARE], visible: encode_rle(far_visible),
                 "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0, "ico_id": 2},
                {"id": 3, "image_id": 2, "category_id": 1, amodal: [[1.5, 1.0, 18.0, 1.0, 18.0, 9.0, 1.5, 9.0]],
                 visible: [[1.5, 1.0, 18.0, 1.0, 18.0, 9.0, 1.5, 9.0]], "iscrowd": 0, "ico_id": 1}]}


# ------------------------------------------------------------------------------------------ targets
# Each runs one command on one corrupted document and asserts the promise (Example.check) and the target's
# own properties; the fuzz tests below and test_found_cases share them.
def check_validate(tmp_path: Path, tiny_dataset: Path, doc: dict) -> None:
    example = Example(tmp_path, (tiny_dataset,))
    root, named = _dataset(example, tiny_dataset, doc)
    outcome = example.check(["validate", str(root), "--split", "test"], {0, 1, 2}, named)
    non_finite = [path for path, value in _nodes({k: doc.get(k) for k in ("images", "annotations")})
                  if isinstance(value, float) and not math.isfinite(value)]
    assert outcome.code != 0 or not non_finite, f"validate passes NaN/inf at {non_finite}"
    example.clean()


def check_show(tmp_path: Path, tiny_dataset: Path, doc: dict) -> None:
    example = Example(tmp_path, (tiny_dataset,))
    root, named = _dataset(example, tiny_dataset, doc)
    grid = example.out / "grid.png"
    outcome = example.check(["show", str(root), "--split", "test", "--out", str(grid)], {0, 2}, named,
                            results=(grid,))
    assert outcome.code == 2 or grid.is_file()
    example.clean()


def check_evaluate(tmp_path: Path, tiny_dataset: Path, doc: dict) -> None:
    example = Example(tmp_path, (tiny_dataset,))
    root, named = _dataset(example, tiny_dataset, doc)
    result = example.out / "r.json"
    outcome = example.check(["evaluate", "--method", "visible", "--protocol", "given-visible", "--data", str(root),
                             "--split", "test", "--json", str(result), "--quiet"], {0, 2}, named, results=(result,))
    assert outcome.code == 2 or json.loads(result.read_text())["method"] == "visible"
    example.clean()


def check_convert(tmp_path: Path, kind: str, doc: dict) -> None:
    """``kind``: kins or d2sa (a COCO-style file, converted as that format and as auto), or cocoa (``doc`` is
    1.json of the tiny native COCOA folder)."""
    example = Example(tmp_path)
    result = example.out / "c.json"
    if kind == "cocoa":
        folder = example.root / "cocoa"
        shutil.copytree(COCOA_TINY, folder)
        source = write_json(folder / "1.json", doc)
        runs = [["convert", str(folder), "--format", "cocoa", "--out", str(result)]]
    else:
        source = write_json(example.root / f"{kind}.json", doc)
        runs = [["convert", str(source), "--format", fmt, "--out", str(result)] for fmt in (kind, "auto")]
    for argv in runs:
        outcome = example.check(argv, {0, 2}, source, results=(result,))
        assert outcome.code == 2 or json.loads(result.read_text())["annotations"]
    example.clean()


def check_predict(tmp_path: Path, tiny_dataset: Path, names: list[str], doc: dict) -> None:
    """predict a.png b.png (the test split's images ``names``) --visible ``doc``."""
    example = Example(tmp_path)
    images = example.root / "images"
    images.mkdir()
    for name, target in zip(names, ("a.png", "b.png")):
        shutil.copyfile(tiny_dataset / "images" / "test" / name, images / target)
    visible = write_json(example.root / "visible.json", doc)
    outcome = example.check(["predict", str(images / "a.png"), str(images / "b.png"), "--visible", str(visible),
                             "--out", str(example.out), "--no-overlays"], {0, 1, 2}, visible,
                            results=(example.out / "results.json",))
    if outcome.code in (0, 1):
        assert (example.out / "results.json").is_file()
    if outcome.code == 1:  # some image failed: each named, with the cause (never a bare Python exception)
        failed = [line for line in outcome.out.splitlines() if line.startswith("  failed: ")]
        assert failed and all(line.startswith(f"  failed: {images}{os.sep}") for line in failed), outcome.out
        unnamed = [line for line in failed if re.match(r"  failed: \S+: [A-Z]\w*(Error|Exception)\b", line)]
        assert not unnamed, f"an unchecked value of {visible} reached the model: {unnamed}"
    example.clean()


class ConfigAccepted(Exception):
    """Raised instead of the work that follows reading a config: the command accepted it."""


def must_refuse(edits: list[Mutation], base) -> bool:
    """Whether a config corrupted by ``edits`` must be refused (exit 2 naming the file and key) before any
    work: it holds NaN, inf or a huge number (over any sensible setting), or a string, mapping or list
    where the shipped config has a number or flag. Judged on the edited config: a value that a later edit
    removed or replaced (or a path an earlier edit removed, which apply skips) counts as what is left."""
    edited = apply(base, edits)
    for edit in edits:
        if edit.op != "set":
            continue
        try:
            original, value = base, edited
            for key in edit.path:
                original, value = original[key], value[key]
        except (KeyError, IndexError, TypeError):
            continue
        if _is_number(value) and (not math.isfinite(value) or abs(value) >= 3e9):
            return True
        if isinstance(value, (str, dict)) and not isinstance(original, (str, dict)):
            return True
        if isinstance(value, list) and not isinstance(original, list):
            return True
    return False


TRAIN_COMMANDS = {
    "shape": ("shape_cpu.yaml", []),
    "refine": ("refine_cpu.yaml", ["--shape-weights", str(SHIPPED / "shape.safetensors")]),
    "detector": ("detector_cpu_small.yaml", []),
    "crop-head": ("crop_head_cpu.yaml", []),
}


@pytest.fixture
def stop_at_the_data(monkeypatch):
    """Every training stage reads its split (AmodalDataset) first of all its work: reaching it means the
    config was accepted; ConfigAccepted stops the command there, so nothing trains."""
    from amodal3d.data.dataset import AmodalDataset

    def accepted(*args, **kwargs):
        raise ConfigAccepted

    monkeypatch.setattr(AmodalDataset, "__init__", accepted)


def check_train(tmp_path: Path, tiny_dataset: Path, command: str, edits: list[Mutation], refuse: bool) -> None:
    """amodal3d train COMMAND --config (the shipped config with ``edits``): refused with exit 2 naming the
    config, or (unless ``refuse``) accepted."""
    name, extra = TRAIN_COMMANDS[command]
    base = yaml.safe_load(config_file(name).read_text())
    example = Example(tmp_path, (tiny_dataset,))
    config = example.root / "config.yaml"
    config.write_text(yaml.safe_dump(apply(base, edits)))
    argv = ["train", command, "--config", str(config), "--data", str(tiny_dataset), "--out", str(example.out / "run"),
            "--quiet", "--device", "cpu", *extra]
    try:
        example.check(argv, {2}, config, results=(example.out,))
    except ConfigAccepted:
        assert not refuse, f"train {command} would start with {edits}"
    example.clean()


@pytest.fixture(scope="module")
def digestless_shape(tmp_path_factory) -> Path:
    """The shipped shape weights whose safetensors metadata holds no config digest (as weights written by
    another tool): the JSON config alone then says how to build the model."""
    from safetensors.torch import save as st_save

    from amodal3d.engine.weights import read_safetensors

    folder = tmp_path_factory.mktemp("weights")
    tensors, metadata = read_safetensors(SHIPPED / "shape.safetensors")
    metadata = {k: v for k, v in metadata.items() if k != "config_sha256"}
    (folder / "shape.safetensors").write_bytes(st_save(tensors, metadata=metadata))
    return folder / "shape.safetensors"


@pytest.fixture
def stop_at_the_model(monkeypatch):
    """ConfigAccepted instead of building a shape model: its config was accepted."""
    from amodal3d.models.shape import ShapePrior

    def accepted(self, config):
        raise ConfigAccepted(config)

    monkeypatch.setattr(ShapePrior, "__init__", accepted)


def check_weights_config(tmp_path: Path, digestless: Path, edits: list[Mutation], refuse: bool) -> None:
    """export-mesh with shape weights whose JSON config has ``edits`` (its digest recomputed): refused with
    exit 2 naming the JSON, or (unless ``refuse``) accepted."""
    from amodal3d.engine.weights import config_digest

    base = json.loads((SHIPPED / "shape.json").read_text())
    example = Example(tmp_path, (digestless,))
    weights = example.root / "shape.safetensors"
    shutil.copyfile(digestless, weights)
    config = apply(base["config"], edits)
    info = write_json(example.root / "shape.json", {**base, "config": config, "config_sha256": config_digest(config)})
    mesh = example.out / "m.obj"
    argv = ["export-mesh", "--weights", str(weights), "--data", str(example.root / "no-data"), "--split", "test",
            "--out", str(mesh)]
    try:
        example.check(argv, {2}, info, results=(mesh,))
    except ConfigAccepted:
        assert not refuse, f"the shape model would be built from {edits}"
    example.clean()


@pytest.fixture(scope="module")
def shipped():
    return amodal3d.pipeline.AmodalSegmenter.from_pretrained("cpu-small")


@pytest.fixture
def loaded_once(shipped, monkeypatch):
    """predict loads the shipped model once for the module."""
    monkeypatch.setattr(amodal3d.pipeline.AmodalSegmenter, "from_pretrained", lambda *args, **kwargs: shipped)
    return shipped


# ------------------------------------------------------------------------------ amodal3d annotation files
def test_validate_survives_corrupt_annotation_files(tiny_dataset, base_test_json, tmp_path):
    @fuzz(100)
    @given(data=st.data())
    def check(data):
        check_validate(tmp_path, tiny_dataset, apply(base_test_json, data.draw(mutations(base_test_json))))

    check()


def test_show_survives_corrupt_annotation_files(tiny_dataset, base_test_json, tmp_path):
    @fuzz(60)
    @given(data=st.data())
    def check(data):
        check_show(tmp_path, tiny_dataset, apply(base_test_json, data.draw(mutations(base_test_json))))

    check()


def test_evaluate_survives_corrupt_annotation_files(tiny_dataset, base_test_json, tmp_path):
    @fuzz(12)
    @given(data=st.data())
    def check(data):
        check_evaluate(tmp_path, tiny_dataset, apply(base_test_json, data.draw(mutations(base_test_json))))

    check()


# ------------------------------------------------------------------------------ convert: KINS, D2SA, COCOA
def _convert_base(kind: str) -> dict:
    return json.loads((COCOA_TINY / "1.json").read_text()) if kind == "cocoa" else _coco_style(kind)


@pytest.mark.parametrize("kind", ["kins", "d2sa", "cocoa"])
def test_convert_survives_corrupt_files(tmp_path, kind):
    base = _convert_base(kind)

    @fuzz(50)
    @given(data=st.data())
    def check(data):
        check_convert(tmp_path, kind, apply(base, data.draw(mutations(base))))

    check()


# ------------------------------------------------------------------------------------------ predict --visible
def test_predict_survives_corrupt_visible_files(tiny_dataset, base_test_json, tmp_path, loaded_once):
    base = _visible_doc(base_test_json)
    names = [image["file_name"] for image in base_test_json["images"][:2]]

    @fuzz(20)
    @given(data=st.data())
    def check(data):
        check_predict(tmp_path, tiny_dataset, names, apply(base, data.draw(mutations(base))))

    check()


# ------------------------------------------------------------------------------------------ training configs
@pytest.mark.parametrize("command", list(TRAIN_COMMANDS))
def test_train_refuses_corrupt_configs_before_training(tiny_dataset, tmp_path, stop_at_the_data, command):
    base = yaml.safe_load(config_file(TRAIN_COMMANDS[command][0]).read_text())

    @fuzz(60)
    @given(data=st.data())
    def check(data):
        edits = data.draw(mutations(base, ("number", "number", "type", "delete", "name")))
        check_train(tmp_path, tiny_dataset, command, edits, must_refuse(edits, base))

    check()


# ------------------------------------------------------------------------------------------ weights configs
def test_export_mesh_survives_corrupt_weights_json(tiny_dataset, base_test_json, tmp_path):
    """Any edit of the shipped shape.json beside its safetensors: refused naming one of them, or a mesh."""
    base = json.loads((SHIPPED / "shape.json").read_text())

    @fuzz(20)
    @given(data=st.data())
    def check(data):
        example = Example(tmp_path, (tiny_dataset,))
        root, _ = _dataset(example, tiny_dataset, base_test_json)  # a copy: what export-mesh writes there is seen
        weights = example.root / "shape.safetensors"
        shutil.copyfile(SHIPPED / "shape.safetensors", weights)
        info = write_json(example.root / "shape.json", apply(base, data.draw(mutations(base))))
        mesh = example.out / "m.obj"
        outcome = example.check(["export-mesh", "--weights", str(weights), "--data", str(root), "--split", "test",
                                 "--out", str(mesh)], {0, 2}, (str(info), str(weights)), results=(mesh,))
        assert outcome.code == 2 or mesh.is_file()
        example.clean()

    check()


def test_weights_configs_are_checked_before_the_model_is_built(digestless_shape, tmp_path, stop_at_the_model):
    """A weights JSON whose config was changed and its digest recomputed (or weights of another tool): a
    corrupt config is refused naming the JSON, never handed to the model's constructor."""
    base = json.loads((SHIPPED / "shape.json").read_text())["config"]

    @fuzz(30)
    @given(data=st.data())
    def check(data):
        edits = data.draw(mutations(base, ("number", "number", "type", "delete")))
        check_weights_config(tmp_path, digestless_shape, edits, must_refuse(edits, base))

    check()


# ------------------------------------------------------------------------------------------ found cases
def _image_renumbered(base: dict, new_id: int) -> list[Mutation]:
    """Image 0 of ``base`` and its annotations' image_id set to ``new_id``."""
    old = base["images"][0]["id"]
    return [Mutation("set", ("images", 0, "id"), new_id),
            *(Mutation("set", ("annotations", k, "image_id"), new_id)
              for k, a in enumerate(base["annotations"]) if a["image_id"] == old)]


# Minimal reproductions of what the fuzz tests found (issue 33, second round): target, edits of the target's
# base document (a function of it), id. Each must hold the promise like any fuzzed example.
FOUND = [
    ("validate", lambda b: [Mutation("set", ("images", 0, "camera", "K", 0, 0), math.nan)], "validate-nan-camera-K"),
    ("validate", lambda b: [Mutation("set", ("annotations", 0, "pose", "translation", 2), math.inf)],
     "validate-inf-pose"),
    ("validate", lambda b: [Mutation("set", ("annotations", 0, "segmentation", "size", 0), math.nan)],
     "validate-nan-coco-segmentation-size"),
    ("show", lambda b: [Mutation("set", ("annotations", 0, "category_id"), 2**63)], "show-category-id-2**63"),
    ("show", lambda b: [Mutation("set", ("images", 0, "file_name"), ".")], "show-file-name-dot"),
    ("evaluate", lambda b: [Mutation("set", ("annotations", 0, "category_id"), 2**64)],
     "evaluate-category-id-2**64"),
    ("evaluate", lambda b: _image_renumbered(b, 2**63), "evaluate-image-id-2**63"),
    ("evaluate", lambda b: [Mutation("set", ("annotations", 0, "occlude_rate"), 1e308)],
     "evaluate-occlude-rate-1e308"),
    ("predict", lambda b: [Mutation("set", ("annotations", 0, "category_id"), 2**63)], "predict-category-id-2**63"),
    ("weights", lambda b: [Mutation("set", ("roi_size",), math.nan)], "weights-json-named"),
    ("weights", lambda b: [Mutation("set", ("width",), -1)], "weights-width-negative"),
    ("weights", lambda b: [Mutation("set", ("template_subdivisions",), 2**63)], "weights-subdivisions-2**63"),
    ("train shape", lambda b: [Mutation("set", ("model", "width"), -1)], "train-shape-width-negative"),
    ("train shape", lambda b: [Mutation("set", ("model", "template_subdivisions"), 2**63)],
     "train-shape-subdivisions-2**63"),
    ("train crop-head", lambda b: [Mutation("set", ("train", "workers"), 2**63)],  # shape_cpu.yaml sets no workers
     "train-crop-head-workers-2**63"),
    ("train refine", lambda b: [Mutation("set", ("model", "width"), 2**63)], "train-refine-width-2**63"),
    ("train crop-head", lambda b: [Mutation("set", ("model", "roi_size"), -1)], "train-crop-head-roi-size-negative"),
    ("train detector", lambda b: [Mutation("set", ("model", "num_classes"), 2**63)],
     "train-detector-num-classes-2**63"),
    ("train detector", lambda b: [Mutation("set", ("train", "lr"), 1e308)], "train-detector-lr-1e308"),
]


@pytest.mark.parametrize("target, edits", [pytest.param(t, e, id=i) for t, e, i in FOUND])
def test_found_cases(request, tiny_dataset, base_test_json, tmp_path, target, edits):
    if target in ("validate", "show", "evaluate"):
        check = {"validate": check_validate, "show": check_show, "evaluate": check_evaluate}[target]
        check(tmp_path, tiny_dataset, apply(base_test_json, edits(base_test_json)))
    elif target == "predict":
        request.getfixturevalue("loaded_once")
        base = _visible_doc(base_test_json)
        check_predict(tmp_path, tiny_dataset, [i["file_name"] for i in base_test_json["images"][:2]],
                      apply(base, edits(base)))
    elif target == "weights":
        request.getfixturevalue("stop_at_the_model")
        check_weights_config(tmp_path, request.getfixturevalue("digestless_shape"), edits(None), refuse=True)
    else:
        request.getfixturevalue("stop_at_the_data")
        check_train(tmp_path, tiny_dataset, target.split()[1], edits(None), refuse=True)


# ------------------------------------------------------------------------------------------ native crashes
DRIVER = """\
import io, json, sys
from contextlib import redirect_stderr, redirect_stdout
from amodal3d.cli import main

for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(argv)
    print(json.dumps([code, err.getvalue()]), flush=True)
"""


def test_crash_prone_corruptions_in_a_child_process(tiny_dataset, base_test_json, tmp_path):
    """NaN / huge polygon coordinates and overlong or altered RLE strings (what pycocotools' C code crashed
    on) in a child process, so that a segfault is a failure and not a dead test run: every file refused
    with exit 2, and the child, which runs them all, exits 0 (not killed by a signal)."""
    kins = _coco_style("kins")
    coordinate = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 3e9, 2**63])
    cases = []

    def cut_or_extend(data, rle: dict) -> dict:
        """``rle`` with its compressed counts cut short by one run or made longer than its mask."""
        runs = rle_counts(rle["counts"]).tolist()
        how = data.draw(st.sampled_from(["cut", "longer last run", "more runs"]), label="how")
        if how == "cut":
            runs = runs[:-1]
        elif how == "longer last run":
            runs[-1] += data.draw(st.integers(1, 2**31), label="extra")
        else:
            runs += data.draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=3), label="runs")
        return {"size": rle["size"], "counts": compress_counts(runs)}

    @fuzz(20)
    @given(data=st.data())
    def collect(data):
        kind = data.draw(st.sampled_from(["polygon", "rle", "dataset"]), label="kind")
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        if kind == "polygon":
            ann = data.draw(st.sampled_from([1, 2]), label="annotation")
            key = data.draw(st.sampled_from(["a_segm", "i_segm"]), label="key")
            polygon = [*SQUARE] if ann == 1 else [1.5, 1.0, 18.0, 1.0, 18.0, 9.0, 1.5, 9.0]
            polygon[data.draw(st.integers(0, 7), label="at")] = data.draw(coordinate, label="x")
            doc = apply(kins, [Mutation("set", ("annotations", ann, key), [polygon])])
        elif kind == "rle":
            key = data.draw(st.sampled_from(["a_segm", "i_segm"]), label="key")
            doc = apply(kins, [Mutation("set", ("annotations", 0, key),
                                        cut_or_extend(data, kins["annotations"][0][key]))])
        if kind in ("polygon", "rle"):
            source = write_json(folder / "kins.json", doc)
            cases.append((["convert", str(source), "--format", "kins", "--out", str(folder / "out" / "c.json")],
                          (str(source),)))
            return
        ann = data.draw(st.integers(0, len(base_test_json["annotations"]) - 1), label="annotation")
        key = data.draw(st.sampled_from(["amodal_segm", "visible_segm", "occluder_segm"]), label="key")
        doc = apply(base_test_json, [Mutation("set", ("annotations", ann, key),
                                              cut_or_extend(data, base_test_json["annotations"][ann][key]))])
        example = Example(folder)
        root, annotations = _dataset(example, tiny_dataset, doc)
        cases.append((["show", str(root), "--split", "test", "--out", str(folder / "out" / "grid.png")],
                      annotations))

    collect()
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps([argv for argv, _ in cases]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])  # negative: killed by a signal
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == len(cases)
    for (argv, source), (code, err) in zip(cases, results):
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"amodal3d: error: {source[0]}"), (argv, err)
    # and one through the command line itself: the process exits 2
    polygon = apply(kins, [Mutation("set", ("annotations", 1, "a_segm"), [[2.0, 2.0, math.nan, 2.0, 12.0, 12.0]])])
    source = write_json(tmp_path / "nan.json", polygon)
    done = subprocess.run([sys.executable, "-m", "amodal3d", "convert", str(source), "--format", "kins", "--out",
                           str(tmp_path / "out" / "c.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert done.stderr == (f"amodal3d: error: {source}: annotation 2 (a_segm): a polygon coordinate that is NaN "
                           f"or infinite (nan)\n")
    assert not (tmp_path / "out").exists()
