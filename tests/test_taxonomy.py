"""The category set is data (issue 30): amodal3d.categories, the labels datasets give models, the
categories every weights file records, and ``train all`` / ``predict`` / ``evaluate`` on datasets of
their own categories (three new names with ids 7, 42, 1000; class-agnostic; COCOA's), with
``--max-iters`` keeping the end-to-end runs to a few iterations per stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import amodal3d
from amodal3d import predict as predict_module
from amodal3d.categories import (
    CLASS_AGNOSTIC,
    DEFAULT,
    Taxonomy,
    class_agnostic,
    identity,
    load_category_map,
    relabel,
)
from amodal3d.cli import main
from amodal3d.configs import CONFIG_DIR
from amodal3d.data.dataset import AmodalDataset
from amodal3d.engine.weights import load_taxonomy, record_taxonomy, save_weights
from amodal3d.errors import DataError, WeightsError

NEW = ((7, "cat"), (42, "dog"), (1000, "bird"))
SHIPPED = Path(amodal3d.__file__).resolve().parent / "weights" / "cpu-small"
# one round per stage (the shipped chains have two): the smallest train all
ONE_ROUND = ["--detector-config", str(CONFIG_DIR / "orcnn_cpu_small.yaml"),
             "--crop-head-config", str(CONFIG_DIR / "crop_head_cpu.yaml"),
             "--shape-config", str(CONFIG_DIR / "shape_cpu.yaml"),
             "--refine-config", str(CONFIG_DIR / "refine_cpu.yaml")]


def relabelled(source: Path, out: Path, categories=NEW) -> Path:
    """A copy of a generated dataset whose 13 categories become ``categories`` (category id k -> the
    ((k - 1) mod n)-th of them)."""
    shutil.copytree(source, out)
    for path in (out / "annotations").glob("*.json"):
        data = json.loads(path.read_text())
        for ann in data["annotations"]:
            ann["category_id"] = categories[(ann["category_id"] - 1) % len(categories)][0]
        data["categories"] = [{"id": i, "name": n, "supercategory": "new"} for i, n in categories]
        path.write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def three_names(tiny_dataset, tmp_path_factory) -> Path:
    return relabelled(tiny_dataset, tmp_path_factory.mktemp("three") / "data")


def truth_ids(data: Path, split: str = "test") -> list[int]:
    """The category ids of a split's annotations, image by image in file order."""
    coco = json.loads((data / "annotations" / f"{split}.json").read_text())
    return [a["category_id"] for image in coco["images"] for a in coco["annotations"] if a["image_id"] == image["id"]]


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


# ----------------------------------------------------------------------------------------------- Taxonomy
def test_taxonomy_from_coco_labels_ids_and_names():
    taxonomy = Taxonomy.from_coco([{"id": 7, "name": "cat", "supercategory": "x"}, {"id": 42, "name": "dog"},
                                   {"id": 1000, "name": "bird"}])
    assert taxonomy.ids == (7, 42, 1000) and taxonomy.names == ("cat", "dog", "bird") and len(taxonomy) == 3
    assert [taxonomy.label_of(i) for i in (7, 42, 1000)] == [1, 2, 3]
    assert [taxonomy.id_of(k) for k in (1, 2, 3)] == [7, 42, 1000]
    assert taxonomy.ids_of(np.array([3, 1, 1])).tolist() == [1000, 7, 7]
    assert [taxonomy.name_of(k) for k in (0, 1, 3, 4)] == ["0", "cat", "bird", "4"]
    with pytest.raises(KeyError):
        taxonomy.label_of(8)
    with pytest.raises(IndexError, match=r"label 4 is outside 1\.\.3"):
        taxonomy.id_of(4)
    assert Taxonomy.from_json(taxonomy.to_json()) == taxonomy
    assert taxonomy.to_json() == [{"id": 7, "name": "cat"}, {"id": 42, "name": "dog"}, {"id": 1000, "name": "bird"}]
    shuffled = Taxonomy(((42, "dog"), (7, "cat"), (1000, "bird")))
    assert shuffled.same_as(taxonomy) and shuffled != taxonomy
    assert taxonomy.names_ids_as([{"id": 42, "name": "dog"}]) and not taxonomy.names_ids_as([{"id": 1, "name": "dog"}])
    assert taxonomy.describe(2) == "3 categories: 7 cat, 42 dog, ... (1 more)"


@pytest.mark.parametrize("categories, message", [
    ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], r"f\.json: category id 1 appears twice"),
    ([{"id": 1, "name": "a"}, {"id": 2, "name": "a"}], r"f\.json: category name 'a' appears twice"),
    ([{"id": "3", "name": "a"}], r"f\.json: categories\[0\]: id '3' is not an integer id"),
    ([{"id": 1.0, "name": "a"}], r"f\.json: categories\[0\]: id 1\.0 is not an integer id"),
    ([{"id": 1, "name": ""}], r"f\.json: category 1: name '' is not a non-empty string"),
    ([{"id": 1}], r"f\.json: category 1: name None is not a non-empty string"),
    (["a"], r"f\.json: categories\[0\] is not an object"),
    ([], r"f\.json: 'categories' is empty"),
    ({"id": 1}, r"f\.json: 'categories' must be a list"),
])
def test_taxonomy_refuses_bad_categories(categories, message):
    with pytest.raises(DataError, match=message):
        Taxonomy.from_coco(categories, "f.json")


def test_default_is_the_13_shapenet_categories_and_class_agnostic_is_one_object():
    assert DEFAULT.names == amodal3d.CATEGORY_NAMES and len(DEFAULT) == 13
    assert {n: DEFAULT.label_of(i) for i, n in DEFAULT.categories} == amodal3d.CATEGORY_ID
    assert DEFAULT.ids == tuple(range(1, 14)) and amodal3d.DEFAULT_TAXONOMY is DEFAULT
    assert class_agnostic() == CLASS_AGNOSTIC and CLASS_AGNOSTIC.to_json() == [{"id": 1, "name": "object"}]
    assert identity(DEFAULT).is_identity() and not identity(Taxonomy(NEW)).is_identity()


def test_category_maps_are_explicit_and_checked(tmp_path):
    data = Taxonomy(NEW)
    with pytest.raises(DataError, match=r"has other categories \(3 categories: 7 cat, 42 dog, 1000 bird\) than "
                                        r"W \(13 categories: 1 airplane, .*pass --category-map FILE"):
        relabel(data, model=DEFAULT, model_source="W")
    mapping = load_category_map(write_json(tmp_path / "map.json", {"cat": "chair", "dog": "sofa", "bird": None}))
    mapped = relabel(data, model=DEFAULT, category_map=mapping)
    assert mapped.taxonomy == DEFAULT and mapped.label_table() == {7: 5, 42: 10, 1000: 0}
    path = tmp_path / "typo.json"
    with pytest.raises(DataError, match=r"typo\.json: category map names 'cats', which is not a category of the "
                                        r"dataset \(3 categories"):
        relabel(data, model=DEFAULT, category_map={"cats": "chair"}, map_source=path)
    with pytest.raises(DataError, match=r"typo\.json: category 'kitten' is not a category of W"):
        relabel(data, model=DEFAULT, category_map={"cat": "kitten"}, map_source=path, model_source="W")
    # without weights, a map renames, merges (the smallest id) and leaves out
    merged = relabel(data, category_map={"dog": "cat", "bird": "parrot"})
    assert merged.taxonomy == Taxonomy(((7, "cat"), (1000, "parrot")))
    assert merged.label_table() == {7: 1, 42: 1, 1000: 2}
    with pytest.raises(DataError, match="leaves no category"):
        relabel(data, category_map={"cat": None, "dog": None, "bird": None})
    agnostic = relabel(data, class_agnostic=True, category_map={"bird": None})
    assert agnostic.taxonomy == CLASS_AGNOSTIC and agnostic.label_table() == {7: 1, 42: 1, 1000: 0}
    with pytest.raises(DataError, match="--class-agnostic: W are not class-agnostic"):
        relabel(data, model=DEFAULT, class_agnostic=True, model_source="W")
    assert relabel(data, model=Taxonomy(tuple(reversed(NEW)))).label_table() == {7: 3, 42: 2, 1000: 1}


@pytest.mark.parametrize("content, message", [
    ("[1]", r"m\.json: a category map is a JSON object"),
    ("{", r"m\.json: category map is not JSON"),
    ('{"cat": 3}', r"m\.json: category map: 'cat' maps to 3, not a category name or null"),
])
def test_category_map_file_errors_name_the_file(tmp_path, content, message):
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(DataError, match=message):
        load_category_map(tmp_path / "m.json")
    with pytest.raises(DataError, match=r"nope\.json: category map file not found"):
        load_category_map(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------ data and weights
def test_datasets_give_models_contiguous_labels(three_names, tiny_dataset, tmp_path):
    dataset = AmodalDataset(three_names, "train")
    assert dataset.taxonomy == Taxonomy(NEW) == dataset.source_taxonomy
    ids = truth_ids(three_names, "train")
    labels = torch.cat([dataset[i][1]["labels"] for i in range(len(dataset))]).tolist()
    assert labels == [{7: 1, 42: 2, 1000: 3}[i] for i in ids] and set(labels) == {1, 2, 3}
    mapped = dataset.relabelled(relabel(dataset.source_taxonomy, model=DEFAULT,
                                        category_map={"cat": "chair", "dog": "sofa", "bird": None}))
    labels = torch.cat([mapped[i][1]["labels"] for i in range(len(mapped))]).tolist()
    assert labels == [{7: 5, 42: 10}[i] for i in ids if i != 1000]  # birds are left out
    # the 13 default categories are read as themselves: label = id
    default = AmodalDataset(tiny_dataset, "train")
    assert default.taxonomy == DEFAULT and default.relabel.is_identity()
    assert torch.cat([default[i][1]["labels"] for i in range(len(default))]).tolist() == truth_ids(tiny_dataset,
                                                                                                    "train")
    broken = relabelled(three_names, tmp_path / "broken")
    path = broken / "annotations" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 8
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"train\.json: annotation \d+: category_id 8 is not one of the file's "
                                        r"categories \(3 categories"):
        AmodalDataset(broken, "train")


def test_weights_record_their_taxonomy(tmp_path):
    taxonomy = Taxonomy(NEW)
    save_weights(tmp_path / "a", {"w": torch.zeros(2)}, "thing", {"x": 1}, taxonomy=taxonomy)
    assert load_taxonomy(tmp_path / "a.safetensors") == taxonomy
    assert json.loads((tmp_path / "a.json").read_text())["categories"] == taxonomy.to_json()
    save_weights(tmp_path / "b", {"w": torch.zeros(2)}, "thing", {"x": 1})
    assert load_taxonomy(tmp_path / "b.safetensors") is DEFAULT  # none recorded: the 13 default categories
    record_taxonomy(tmp_path / "b.safetensors", CLASS_AGNOSTIC)
    assert load_taxonomy(tmp_path / "b") == CLASS_AGNOSTIC
    for stem in ("detector", "crop_head", "shape", "refine"):  # the shipped weights, unchanged, are the default's
        assert load_taxonomy(SHIPPED / f"{stem}.safetensors").same_as(DEFAULT)
    from amodal3d.pipeline import pipeline_taxonomy

    assert pipeline_taxonomy("cpu-small") == DEFAULT
    info = json.loads((tmp_path / "a.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps({**info, "categories": [{"id": 1, "name": "x"}, {"id": 1,
                                                                                                  "name": "y"}]}))
    with pytest.raises(WeightsError, match=r"a\.json: categories: category id 1 appears twice"):
        load_taxonomy(tmp_path / "a.safetensors")


def test_outputs_name_the_models_categories():
    from amodal3d.structures import Instances

    masks = np.zeros((2, 4, 4), bool)
    masks[:, 1:3, 1:3] = True
    instances = Instances(np.zeros((2, 4), np.float32), np.array([3, 1]), np.ones(2, np.float32), masks, masks,
                          extras={"viewpoints": [{}, {}]})
    entries = predict_module.result_entries(instances, 1, "x.png", Taxonomy(NEW))
    assert [e["category_id"] for e in entries] == [1000, 7]
    assert [e["category_id"] for e in predict_module.result_entries(instances, 1, "x.png")] == [3, 1]  # default
    assert [predict_module.category_name(k, Taxonomy(NEW)) for k in (1, 2, 3)] == ["cat", "dog", "bird"]
    assert predict_module.category_name(5) == "chair"


def test_train_all_refuses_weights_of_other_categories(three_names, tmp_path, capsys):
    """A config chain that starts from the shipped detector (13 categories) on a dataset of three others:
    an error naming both before anything trains, and a category map that names an unknown category is
    an error naming the map file and the name."""
    config = tmp_path / "detector.yaml"
    config.write_text((CONFIG_DIR / "orcnn_cpu_small_finetune.yaml").read_text().replace(
        "init: orcnn_cpu_small.yaml", f"init: {SHIPPED / 'detector.safetensors'}"))
    args = ["train", "all", "--data", str(three_names), "--out", str(tmp_path / "run"), "--detector-config",
            str(config), "--max-iters", "1", "--quiet", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.json has other categories (3 categories: 7 cat, 42 dog, 1000 bird) than the weights " in err
    assert "detector.safetensors (13 categories: 1 airplane" in err and "pass --category-map FILE" in err
    bad = write_json(tmp_path / "bad_map.json", {"cat": "chair", "dog": "couch"})
    assert main([*args, "--category-map", str(bad)]) == 2
    assert "bad_map.json: category 'couch' is not a category of the weights" in capsys.readouterr().err
    assert not (tmp_path / "run" / "detector").exists()
    assert main([*args, "--category-map", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err


@pytest.mark.slow
def test_a_category_map_fine_tunes_weights_of_other_categories(three_names, tmp_path):
    """With --category-map the dataset's names become the weights' (here the shipped detector's): the
    detector keeps its 13 classes and records them."""
    from amodal3d.models.detector_train import DetectorExperiment, train_detector
    from amodal3d.train_all import capped, training_categories

    mapping = write_json(tmp_path / "map.json", {"cat": "chair", "dog": "sofa", "bird": None})
    init = SHIPPED / "detector.safetensors"
    labels = training_categories(three_names, "train", [init], category_map=mapping)
    assert labels.taxonomy == DEFAULT and labels.label_table() == {7: 5, 42: 10, 1000: 0}
    from amodal3d.engine.config import load_experiment

    experiment = capped(load_experiment(DetectorExperiment, CONFIG_DIR / "orcnn_cpu_small_finetune.yaml", {},
                                        init_given=True), 1)
    path = train_detector(experiment, three_names, tmp_path / "run", device="cpu", progress=False, init=init,
                          relabel=labels)
    assert load_taxonomy(path) == DEFAULT
    assert json.loads(path.with_suffix(".json").read_text())["config"]["num_classes"] == 14


# ------------------------------------------------------------------------------------------ end to end
def _overlay_names(monkeypatch) -> list[list[str]]:
    """Record the labels predict draws on each overlay."""
    drawn: list[list[str]] = []
    original = predict_module.overlay

    def spy(image, visible, amodal, labels=(), *args, **kwargs):
        drawn.append([label.rsplit(" ", 1)[0] for label in labels])
        return original(image, visible, amodal, labels, *args, **kwargs)

    monkeypatch.setattr(predict_module, "overlay", spy)
    return drawn


def _predict(images, weights: Path, out: Path, *extra: str) -> list[dict]:
    assert main(["predict", *map(str, images), "--weights", str(weights), "--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_train_all_on_three_new_categories_then_predict_and_evaluate(three_names, tmp_path, monkeypatch, capsys):
    """validate, train all (the shipped chains, each round capped at one iteration), predict: the results
    carry the dataset's ids (7, 42, 1000) and the overlays their names; evaluate names them too."""
    data = three_names
    monkeypatch.chdir(tmp_path)  # train all runs from any folder: its default configs ship in the package
    assert main(["validate", str(data)]) == 0
    run = tmp_path / "run"
    assert main(["train", "all", "--data", str(data), "--out", str(run), "--max-iters", "1", "--quiet",
                 "--device", "cpu"]) == 0
    pipeline = run / "pipeline"
    for stem in ("detector", "crop_head", "shape", "refine", "refine_no_prior"):
        info = json.loads((pipeline / f"{stem}.json").read_text())
        assert info["categories"] == [{"id": i, "name": n} for i, n in NEW], stem
    assert json.loads((pipeline / "detector.json").read_text())["config"]["num_classes"] == 4
    assert json.loads((pipeline / "crop_head.json").read_text())["config"]["num_categories"] == 3
    assert json.loads((pipeline / "shape.json").read_text())["config"]["num_categories"] == 3
    for folder in run.iterdir():  # --max-iters capped every round of every stage
        if (folder / "log.jsonl").is_file():
            events = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
            assert [e["iteration"] for e in events if e.get("event") == "finished"] == [1], folder.name

    images = sorted((data / "images" / "test").glob("*.png"))
    drawn = _overlay_names(monkeypatch)
    results = _predict(images, pipeline, tmp_path / "given", "--visible", str(data / "annotations" / "test.json"))
    names = dict(NEW)
    assert [r["category_id"] for r in results] == truth_ids(data)  # given masks keep their categories
    assert [n for image in drawn for n in image] == [names[i] for i in truth_ids(data)]
    drawn.clear()
    # end to end (one iteration per round: low scores, hence the low threshold)
    results = _predict(images[:1], pipeline, tmp_path / "e2e", "--single-view", "--score-threshold", "0.01")
    assert results and {r["category_id"] for r in results} <= set(names) and len(drawn) == 1
    assert set(drawn[0]) <= set(names.values()) and len(drawn[0]) == len(results)

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--method", "a3d", "--weights", str(pipeline), "--data", str(data), "--protocol",
                 "given-visible", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert set(result["per_category"]) == set(names.values())
    assert result["instances"]["category_id"] == [i for i in truth_ids(data)]
    capsys.readouterr()


@pytest.mark.slow
def test_train_all_class_agnostic(three_names, tmp_path, monkeypatch):
    """--class-agnostic: one 'object' category, one template; any given mask is an object."""
    run = tmp_path / "run"
    assert main(["train", "all", "--data", str(three_names), "--out", str(run), "--max-iters", "1", "--quiet",
                 "--device", "cpu", "--class-agnostic", *ONE_ROUND, "--crop-head-config", "none"]) == 0
    pipeline = run / "pipeline"
    for stem in ("detector", "shape", "refine"):
        assert json.loads((pipeline / f"{stem}.json").read_text())["categories"] == [{"id": 1, "name": "object"}]
    assert json.loads((pipeline / "detector.json").read_text())["config"]["num_classes"] == 2
    assert json.loads((pipeline / "shape.json").read_text())["config"]["num_categories"] == 1
    assert not (pipeline / "crop_head.json").exists()
    images = sorted((three_names / "images" / "test").glob("*.png"))
    drawn = _overlay_names(monkeypatch)
    results = _predict(images, pipeline, tmp_path / "given", "--visible",
                       str(three_names / "annotations" / "test.json"))
    assert [r["category_id"] for r in results] == [1] * len(truth_ids(three_names))
    assert {n for image in drawn for n in image} == {"object"}
    results = _predict(images[:1], pipeline, tmp_path / "e2e", "--single-view", "--score-threshold", "0.01")
    assert results and {r["category_id"] for r in results} == {1}


def _converted(native: Path, root: Path) -> Path:
    """A native COCOA folder as a dataset of its own: ``convert`` -> annotations/{train,test}.json."""
    for split in ("train", "test"):
        shutil.copytree(native, root / "images" / split, ignore=shutil.ignore_patterns("*.json"))
        assert main(["convert", str(native), "--out", str(root / "annotations" / f"{split}.json")]) == 0
    return root


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["cocoa_tiny", "cocoa_demo"])
def test_train_all_on_converted_cocoa_with_its_own_categories(fixture, tmp_path, monkeypatch, capsys):
    """convert, train all, predict on COCOA (the tiny fixture, and the demo photographs when present):
    the model learns COCOA's own categories and names them."""
    from conftest import COCOA_TINY, FIXTURES

    native = COCOA_TINY if fixture == "cocoa_tiny" else FIXTURES / "cocoa_demo"
    if not native.is_dir():
        pytest.skip(f"{native} is not beside the repository")
    data = _converted(native, tmp_path / "cocoa")
    coco = json.loads((data / "annotations" / "train.json").read_text())
    taxonomy = Taxonomy.from_coco(coco["categories"])
    run = tmp_path / "run"
    assert main(["train", "all", "--data", str(data), "--out", str(run), "--max-iters", "1", "--quiet",
                 "--device", "cpu", *ONE_ROUND]) == 0
    for stem in ("detector", "crop_head", "shape"):
        assert load_taxonomy(run / "pipeline" / f"{stem}.safetensors") == taxonomy
    images = sorted(p for p in (data / "images" / "test").iterdir())
    drawn = _overlay_names(monkeypatch)
    results = _predict(images, run / "pipeline", tmp_path / "given", "--visible",
                       str(data / "annotations" / "test.json"))
    given = [a for image in coco["images"] for a in coco["annotations"] if a["image_id"] == image["id"]]
    assert [r["category_id"] for r in results] == [a["category_id"] for a in given]
    if fixture == "cocoa_tiny":
        assert [n for image in drawn for n in image] == [taxonomy.name_of(taxonomy.label_of(a["category_id"]))
                                                          for a in given]
    capsys.readouterr()


def test_an_annotation_tool_export_converts_with_its_own_categories(tmp_path, capsys):
    """docs/custom-data.md, step 1: a COCO export of an annotation tool (labelme2coco, CVAT) with each
    object's whole outline as ``segmentation`` and, when occluded, its visible part as ``visible_mask``
    converts (D2SA's layout), validates, and reads with its own categories (ids 5 and 9: labels 1, 2)."""
    from PIL import Image

    root = tmp_path / "mine"
    (root / "images" / "train").mkdir(parents=True)
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(root / "images" / "train" / "a.png")
    front = [[2, 2, 14, 2, 14, 14, 2, 14]]                      # whole and unoccluded
    back = [[10, 6, 26, 6, 26, 20, 10, 20]]                     # hidden where it meets the front one
    export = {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "segmentation": front},
                              {"id": 2, "image_id": 1, "category_id": 5, "segmentation": back,
                               "visible_mask": [[14, 6, 26, 6, 26, 20, 10, 20, 10, 14, 14, 14]]}],
              "categories": [{"id": 5, "name": "widget"}, {"id": 9, "name": "gadget"}]}
    source = write_json(tmp_path / "export.json", export)
    assert main(["convert", str(source), "--out", str(root / "annotations" / "train.json")]) == 0
    assert main(["validate", str(root)]) == 0
    assert "0 violation(s)" in capsys.readouterr().out
    dataset = AmodalDataset(root, "train")
    _, target = dataset[0]
    assert dataset.taxonomy == Taxonomy(((5, "widget"), (9, "gadget")))
    assert target["labels"].tolist() == [2, 1]
    assert target["visible_masks"].sum((1, 2)).tolist() == [144, 224 - 4 * 8]  # the front one hides 4 x 8
    assert target["amodal_masks"].sum((1, 2)).tolist() == [144, 224]


def test_the_harness_reads_a_dataset_in_the_predictors_labels():
    """evaluate: a split of the predictor's categories (a subset is enough) is read as its labels; a map
    reads another taxonomy as them (null leaves a category out); otherwise the categories are another
    taxonomy's (None: the predictor names the instances itself, AP is class-agnostic)."""
    from amodal3d.evaluation.harness import model_labels

    model = Taxonomy(NEW)
    assert model_labels([{"id": 1000, "name": "bird"}, {"id": 7, "name": "cat"}], model) == {1000: 3, 7: 1}
    assert model_labels([{"id": 1, "name": "cat"}], model) is None
    assert model_labels([{"id": i, "name": n} for i, n in DEFAULT.categories], DEFAULT) == {i: i for i in range(1, 14)}
    cocoa = [{"id": 1, "name": "kitty"}, {"id": 2, "name": "crow"}, {"id": 3, "name": "cup"}]
    assert model_labels(cocoa, model, {"kitty": "cat", "crow": "bird", "cup": None}) == {1: 1, 2: 3, 3: 0}
    with pytest.raises(DataError, match=r"m\.json: category 'cup' is not a category of the predictor's weights"):
        model_labels(cocoa, model, {"kitty": "cat", "crow": "bird"}, "m.json")


def test_single_stage_commands_check_their_categories(three_names, tmp_path, capsys):
    """train detector / crop-head / shape / refine take --class-agnostic and --category-map too; --init
    weights of other categories are an error naming both."""
    out = tmp_path / "run"
    args = ["train", "detector", "--config", str(CONFIG_DIR / "orcnn_cpu_small_finetune.yaml"), "--init",
            str(SHIPPED / "detector.safetensors"), "--data", str(three_names), "--out", str(out), "--max-iters", "1",
            "--device", "cpu", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "has other categories (3 categories: 7 cat, 42 dog, 1000 bird) than the --init weights" in err
    assert main([*args, "--class-agnostic"]) == 2
    assert "--class-agnostic: the weights " in capsys.readouterr().err
    assert main([*args, "--category-map", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert not (out / "model.safetensors").exists()


def test_train_shape_class_agnostic(three_names, tmp_path, capsys):
    out = tmp_path / "shape"
    assert main(["train", "shape", "--data", str(three_names), "--out", str(out), "--max-iters", "1",
                 "--device", "cpu", "--quiet", "--class-agnostic", "--limit-images", "2"]) == 0
    info = json.loads((out / "model.json").read_text())
    assert info["categories"] == [{"id": 1, "name": "object"}] and info["config"]["num_categories"] == 1


def test_evaluate_reads_another_taxonomy_through_a_category_map(tiny_dataset, tmp_path, capsys):
    """amodal3d evaluate --category-map: a split whose categories the shipped model names otherwise is
    scored per category under the model's names; a map naming a category the weights lack is an error
    naming the map file."""
    renamed = [(100 + i, f"thing{i}") for i in range(13)]
    data = relabelled(tiny_dataset, tmp_path / "data", renamed)
    mapping = write_json(tmp_path / "map.json", {f"thing{i}": name for i, name in enumerate(DEFAULT.names)})
    args = ["evaluate", "--method", "visible", "--data", str(data), "--split", "test", "--protocol", "given-visible",
            "--limit", "2", "--quiet"]
    assert main([*args, "--json", str(tmp_path / "mapped.json"), "--category-map", str(mapping)]) == 0
    mapped = json.loads((tmp_path / "mapped.json").read_text())
    coco = json.loads((tiny_dataset / "annotations" / "test.json").read_text())
    first = {image["id"] for image in coco["images"][:2]}
    truth = {DEFAULT.names[a["category_id"] - 1] for a in coco["annotations"] if a["image_id"] in first}
    counted = lambda result: {name for name, row in result["per_category"].items() if row["count"]}  # noqa: E731
    assert counted(mapped) == truth and set(mapped["per_category"]) == set(DEFAULT.names)
    assert main([*args, "--json", str(tmp_path / "unmapped.json")]) == 0
    assert not counted(json.loads((tmp_path / "unmapped.json").read_text())) & set(DEFAULT.names)
    capsys.readouterr()
    bad = write_json(tmp_path / "bad.json", {"thing0": "unicorn"})
    assert main([*args, "--json", str(tmp_path / "bad_out.json"), "--category-map", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "unicorn" in err and "Traceback" not in err
    assert not (tmp_path / "bad_out.json").exists()
