"""Standard checkpoints as starting points (--init-backbone, --init-detector): files with the key layout of
torchvision's published ImageNet ResNet-50 / MobileNetV3-Large and COCO Mask R-CNN checkpoints, made here
(nothing can be downloaded), with random values so that a copied tensor is told from a fresh one."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from safetensors.torch import save_file

from amodal3d import CATEGORY_NAMES
from amodal3d.cli import main
from amodal3d.engine.config import load_experiment
from amodal3d.errors import WeightsError
from amodal3d.models.detector import DetectorConfig, build_detector, resolve_config
from amodal3d.models.detector_train import DetectorExperiment
from amodal3d.models.pretrained import (
    COCO_CATEGORIES,
    COCO_TO_OURS,
    coco_rows,
    detector_key,
    load_checkpoint_into,
    read_checkpoint,
)

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "amodal3d" / "configs"
CLASS_KEYS = {f"roi_heads.{m}.{p}" for m in ("box_predictor.cls_score", "box_predictor.bbox_pred",
                                              "mask_predictor.mask_fcn_logits") for p in ("weight", "bias")}


def randomised(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every floating tensor drawn anew (variances positive), so loaded values differ from any init."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if value.is_floating_point():
            value = torch.randn(value.shape, generator=generator) * 0.1
            if key.endswith("running_var"):
                value = value.abs() + 0.5
        out[key] = value.clone()
    return out


def published_v1_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The key names of torchvision's published maskrcnn_resnet50_fpn_coco file (old module versions;
    FrozenBatchNorm2d: no num_batches_tracked)."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        key = re.sub(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.0\.", r"\1.", key)
        key = re.sub(r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv.", key)
        key = re.sub(r"^roi_heads\.mask_head\.(\d+)\.0\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.",
                     key)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """(state, .pth path, .safetensors path in the published v1 key names) of a COCO Mask R-CNN layout."""
    folder = tmp_path_factory.mktemp("coco")
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    state = randomised(model.state_dict(), 0)
    torch.save(state, folder / "maskrcnn_resnet50_fpn_coco.pth")
    old = published_v1_layout(state)
    assert "rpn.head.conv.weight" in old and "roi_heads.mask_head.mask_fcn4.bias" in old
    save_file({k: v.contiguous() for k, v in old.items()}, str(folder / "maskrcnn_v1.safetensors"))
    return state, folder / "maskrcnn_resnet50_fpn_coco.pth", folder / "maskrcnn_v1.safetensors"


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory) -> tuple[dict, Path]:
    path = tmp_path_factory.mktemp("mobilenet") / "mobilenet_v3_large.pth"
    state = randomised(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), 1)
    torch.save(state, path)
    return state, path


def torchvision_detector(heads: str = "visible"):
    torch.manual_seed(0)
    return build_detector(DetectorConfig(preset="r50-fpn-torchvision", heads=heads,
                                         num_classes=len(CATEGORY_NAMES) + 1))


def test_coco_names_are_torchvisions_and_the_map_names_our_categories():
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    assert list(COCO_CATEGORIES) == MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]  # a constant
    assert set(COCO_TO_OURS.values()) <= set(CATEGORY_NAMES) and set(COCO_TO_OURS) <= set(COCO_CATEGORIES)
    rows = coco_rows(CATEGORY_NAMES)
    named = {CATEGORY_NAMES[k - 1]: COCO_CATEGORIES[j] for k, j in rows.items() if k}
    assert named == {"airplane": "airplane", "bench": "bench", "car": "car", "chair": "chair", "sofa": "couch",
                     "display": "tv", "table": "dining table", "phone": "cell phone", "vessel": "boat"}
    assert rows[0] == 0 and rows[CATEGORY_NAMES.index("sofa") + 1] == 63
    # another taxonomy: names that COCO has take its rows, the others none
    assert coco_rows(["dog", "widget", "cell phone"]) == {0: 0, 1: 18, 3: 77}


def test_the_coco_checkpoint_loads_whole_into_the_torchvision_preset(coco):
    state, pth, _ = coco
    model = torchvision_detector()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_checkpoint_into(model, pth, "detector", CATEGORY_NAMES)
    own = model.state_dict()
    assert report.unused == () and report.missing == ()
    assert {r.split(" ")[0] for r in report.reinitialised} == CLASS_KEYS
    assert "roi_heads.box_predictor.cls_score.weight (91, 1024) -> (14, 1024)" in report.reinitialised
    # every other tensor of the model comes from the checkpoint: backbone, FPN, RPN, box and mask heads
    assert set(report.loaded) == set(own) - CLASS_KEYS
    for key in own:
        if key not in CLASS_KEYS:
            assert torch.equal(own[key], state[key]), key
    assert sum(k.startswith("backbone.body.") for k in report.loaded) == 265
    assert sum(k.startswith("backbone.fpn.") for k in report.loaded) == 16
    # class rows: COCO's rows for the mapped categories (4 rows each for box regression), fresh ones else
    for ours, coco_name in [("car", "car"), ("sofa", "couch"), ("display", "tv"), ("vessel", "boat"), (None, None)]:
        k = CATEGORY_NAMES.index(ours) + 1 if ours else 0
        j = COCO_CATEGORIES.index(coco_name) if coco_name else 0
        for name in ("cls_score.weight", "cls_score.bias"):
            assert torch.equal(own[f"roi_heads.box_predictor.{name}"][k], state[f"roi_heads.box_predictor.{name}"][j])
        for name in ("weight", "bias"):
            assert torch.equal(own[f"roi_heads.box_predictor.bbox_pred.{name}"][4 * k:4 * k + 4],
                               state[f"roi_heads.box_predictor.bbox_pred.{name}"][4 * j:4 * j + 4])
            assert torch.equal(own[f"roi_heads.mask_predictor.mask_fcn_logits.{name}"][k],
                               state[f"roi_heads.mask_predictor.mask_fcn_logits.{name}"][j])
    for unmapped in ("dresser", "lamp", "speaker", "rifle"):
        k = CATEGORY_NAMES.index(unmapped) + 1
        for key in CLASS_KEYS:
            rows = slice(4 * k, 4 * k + 4) if "bbox_pred" in key else slice(k, k + 1)
            assert torch.equal(own[key][rows], before[key][rows]), (unmapped, key)
    assert "sofa <- couch" in report.copied_rows and "background <- __background__" in report.copied_rows
    assert len(report.copied_rows) == 10
    lines = report.lines()
    assert lines[0] == f"--init-detector {pth}: 301 tensors loaded, 6 re-initialised, 0 unused, 0 missing"


def test_the_published_v1_key_names_and_safetensors_load_the_same(coco):
    state, pth, v1 = coco
    assert detector_key("roi_heads.mask_head.mask_fcn1.weight") == "roi_heads.mask_head.0.0.weight"
    assert detector_key("backbone.fpn.layer_blocks.3.bias") == "backbone.fpn.layer_blocks.3.0.bias"
    assert detector_key("rpn.head.conv.weight") == "rpn.head.conv.0.0.weight"
    assert detector_key("rpn.head.cls_logits.weight") == "rpn.head.cls_logits.weight"
    model = torchvision_detector(heads="both")
    report = load_checkpoint_into(model, v1, "detector", CATEGORY_NAMES)
    assert report.unused == () and report.missing == ()
    own = model.state_dict()
    for key, value in state.items():
        if not key.endswith("num_batches_tracked") and key not in CLASS_KEYS:
            assert torch.equal(own[key], value), key
    # heads=both: the amodal mask branch starts from COCO's mask head too
    amodal = [k for k in own if k.startswith(("roi_heads.amodal_mask_head.", "roi_heads.amodal_mask_predictor."))]
    assert len(amodal) == 12
    for key in amodal:
        source = state[key.replace("amodal_", "", 1)]
        if key.endswith(("mask_fcn_logits.weight", "mask_fcn_logits.bias")):
            k, j = CATEGORY_NAMES.index("chair") + 1, COCO_CATEGORIES.index("chair")
            assert torch.equal(own[key][k], source[j]), key
        else:
            assert torch.equal(own[key], source), key
    assert sum(r.startswith("roi_heads.amodal_mask_predictor.mask_fcn_logits") for r in report.reinitialised) == 2


def test_imagenet_backbones_load_into_the_backbone(tmp_path, mobilenet):
    resnet = randomised(torchvision.models.resnet50(weights=None).state_dict(), 2)
    torch.save(resnet, tmp_path / "resnet50.pth")
    model = torchvision_detector()
    fresh_fpn = model.state_dict()["backbone.fpn.inner_blocks.0.0.weight"].clone()
    report = load_checkpoint_into(model, tmp_path / "resnet50.pth", "backbone")
    own = model.state_dict()
    assert report.unused == ("fc.weight", "fc.bias") and report.missing == () and report.reinitialised == ()
    body = [k for k in own if k.startswith("backbone.body.")]
    assert sorted(report.loaded) == sorted(body) and len(body) == 265
    for key in body:
        assert torch.equal(own[key], resnet[key.removeprefix("backbone.body.")]), key
    assert torch.equal(own["backbone.fpn.inner_blocks.0.0.weight"], fresh_fpn)  # only the backbone

    # MobileNetV3-Large into cpu-small (GroupNorm): convolutions and affine parameters; the BatchNorm
    # statistics, the last 960-channel block and the classifier have no place and are listed
    state, path = mobilenet
    small = build_detector(DetectorConfig(preset="cpu-small"))
    report = load_checkpoint_into(small, path, "backbone")
    own = small.state_dict()
    assert report.missing == () and report.reinitialised == ()
    for key in report.loaded:
        assert torch.equal(own[key], state["features." + key.removeprefix("backbone.body.")]), key
    assert len(report.loaded) == len([k for k in own if k.startswith("backbone.body.")]) == 167
    assert {"classifier.0.weight", "features.16.0.weight", "features.0.1.running_mean"} <= set(report.unused)
    assert not any(k.endswith("num_batches_tracked") for k in report.unused)
    # with norm: batch the statistics load too
    batch = build_detector(DetectorConfig(preset="cpu-small", norm="batch"))
    report = load_checkpoint_into(batch, path, "backbone")
    assert all(k.startswith(("classifier.", "features.16.")) for k in report.unused)
    assert torch.equal(batch.state_dict()["backbone.body.0.1.running_var"], state["features.0.1.running_var"])


class Payload:
    """A pickled object whose unpickling would create a file (it must never run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_files_that_are_not_checkpoints_are_refused_naming_the_file(tmp_path):
    model = build_detector(DetectorConfig(preset="cpu-small"))
    marker = tmp_path / "ran"
    torch.save({"backbone.body.0.0.weight": torch.zeros(1), "extra": Payload(marker)}, tmp_path / "objects.pth")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    for name in ("objects.pth", "raw.pkl"):
        with pytest.raises(WeightsError, match=rf"^{re.escape(str(tmp_path / name))}: holds Python objects other "
                                               r"than tensors: refused \(.*weights_only=True"):
            load_checkpoint_into(model, tmp_path / name, "detector")
    assert not marker.exists()
    (tmp_path / "random.bin").write_bytes(bytes(range(7, 250)) * 10)
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(tmp_path / 'random.bin'))}: not a checkpoint"):
        read_checkpoint(tmp_path / "random.bin")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04" + b"\0" * 60)
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(tmp_path / 'broken.pth'))}: unreadable torch.save"):
        read_checkpoint(tmp_path / "broken.pth")
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "empty.pth")
    with pytest.raises(WeightsError, match=r"empty\.pth: holds no tensors"):
        read_checkpoint(tmp_path / "empty.pth")
    with pytest.raises(WeightsError, match=r"nothing\.pth: file not found"):
        read_checkpoint(tmp_path / "nothing.pth")
    torch.save({"encoder.weight": torch.zeros(3), "decoder.bias": torch.zeros(2)}, tmp_path / "other.pth")
    for kind in ("backbone", "detector"):
        with pytest.raises(WeightsError, match=rf"^{re.escape(str(tmp_path / 'other.pth'))}: no key of this "
                                               rf"checkpoint matches the detector's {kind} \(its keys: encoder"):
            load_checkpoint_into(model, tmp_path / "other.pth", kind)
    # a classification checkpoint given as a detector, and a ResNet-50 for a MobileNet backbone
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(1000)}, tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match=r"resnet\.pth: no key .*goes to --init-backbone$"):
        load_checkpoint_into(model, tmp_path / "resnet.pth", "detector")
    with pytest.raises(WeightsError, match=r"resnet\.pth: no key .*MobileNetV3 classification checkpoint"):
        load_checkpoint_into(model, tmp_path / "resnet.pth", "backbone")
    # keys that match by name only
    torch.save({"backbone.body.0.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "shapes.pth")
    with pytest.raises(WeightsError, match=r"shapes\.pth: no tensor of this checkpoint fits the detector: 1 match "
                                           r"by name but every shape differs \(e\.g\. backbone\.body\.0\.0\.weight "
                                           r"\(8, 3, 3, 3\) -> \(16, 3, 3, 3\)\)"):
        load_checkpoint_into(model, tmp_path / "shapes.pth", "detector")


def test_the_coco_config_is_the_torchvision_preset():
    config = resolve_config(load_experiment(DetectorExperiment, CONFIGS / "detector_r50_fpn_coco.yaml").model)
    assert (config.preset, config.norm, config.box_head, config.box_representation_size) == \
        ("r50-fpn-torchvision", "frozen_batch", "2fc", 1024)
    assert (config.min_size, config.max_size, config.roi_sampling_ratio) == (800, 1333, 2)
    text = (CONFIGS / "detector_r50_fpn_coco.yaml").read_text()
    assert "--init-detector maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in text


def test_cli_trains_a_step_from_an_imagenet_backbone(tiny_dataset, tmp_path, mobilenet, capsys):
    state, path = mobilenet
    config = tmp_path / "exp.yaml"
    config.write_text((CONFIGS / "detector_cpu_small.yaml").read_text().replace(
        "  heads: visible", "  heads: visible\n  min_size: 128\n  max_size: 128\n  norm: batch"))
    out = tmp_path / "run"
    argv = ["train", "detector", "--config", str(config), "--data", str(tiny_dataset), "--out", str(out),
            "--device", "cpu", "--max-iters", "1", "--batch-size", "2", "--workers", "0", "--quiet"]
    assert main([*argv, "--init-backbone", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "model.safetensors")
    assert f"--init-backbone {path}: 302 tensors loaded, 0 re-initialised, " in captured.err
    recorded = yaml.safe_load((out / "config.yaml").read_text())["init_backbone"]
    assert recorded["path"] == str(path) and recorded["loaded"] == 302 and recorded["missing"] == []
    assert "classifier.3.weight" in recorded["unused"]
    info = json.loads((out / "model.json").read_text())
    assert info["config"]["norm"] == "batch"

    assert main([*argv[:-1], "--out", str(tmp_path / "r2"), "--init", str(out), "--init-backbone", str(path)]) == 2
    assert "amodal3d: error: --init-backbone: give either --init" in capsys.readouterr().err
    (tmp_path / "junk.pth").write_text("not a checkpoint at all")
    assert main([*argv, "--out", str(tmp_path / "r3"), "--init-detector", str(tmp_path / "junk.pth")]) == 2
    assert f"amodal3d: error: {tmp_path / 'junk.pth'}: not a checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_a_step_from_the_coco_detector(tiny_dataset, tmp_path, coco, capsys):
    _, pth, _ = coco
    config = tmp_path / "coco.yaml"
    config.write_text((CONFIGS / "detector_r50_fpn_coco.yaml").read_text().replace(
        "  heads: visible", "  heads: visible\n  min_size: 128\n  max_size: 128\n  rpn_post_nms_top_n_train: 50\n"
                            "  box_batch_size_per_image: 16"))
    out = tmp_path / "run"
    argv = ["train", "detector", "--config", str(config), "--data", str(tiny_dataset), "--out", str(out),
            "--device", "cpu", "--max-iters", "1", "--batch-size", "1", "--workers", "0", "--quiet",
            "--init-detector", str(pth)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"--init-detector {pth}: 301 tensors loaded, 6 re-initialised, 0 unused, 0 missing" in err
    recorded = yaml.safe_load((out / "config.yaml").read_text())["init_detector"]
    assert len(recorded["reinitialised"]) == 6 and "display <- tv" in recorded["copied_rows"]
    assert json.loads((out / "model.json").read_text())["config"]["preset"] == "r50-fpn-torchvision"


def test_train_all_starts_only_a_chain_from_scratch_from_a_checkpoint(tmp_path, coco):
    from amodal3d.train_all import train_all

    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "round.yaml").write_text("init: w.safetensors\nmodel: {preset: cpu-small}\n")
    with pytest.raises(WeightsError, match=r"round\.yaml: its chain starts from .*w\.safetensors: a standard "
                                           r"checkpoint \(--init-backbone / --init-detector\) starts only a chain"):
        train_all(str(tmp_path / "data"), str(tmp_path / "out"), detector_config=str(tmp_path / "round.yaml"),
                  init_detector=coco[1])
