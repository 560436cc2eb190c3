"""The installed configs (amodal3d/configs) rebuild the shipped model: each chain's rounds have the model
config whose hash the shipped weights' JSON records, and ``train all`` finds them from any folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import amodal3d
from amodal3d.cli import build_parser
from amodal3d.configs import CONFIG_DIR, SHIPPED, config_names, config_path, rounds
from amodal3d.engine.config import ConfigError, from_dict, to_dict
from amodal3d.engine.weights import config_digest
from amodal3d.models import detector as det
from amodal3d.models import detector_train
from amodal3d.models.crop_head import CropHeadExperiment
from amodal3d.models.refine_train import RefineExperiment
from amodal3d.models.shape_train import ShapeExperiment

SHIPPED_WEIGHTS = Path(amodal3d.__file__).parent / "weights" / "cpu-small"


def _no_prior(model):
    return dataclasses.replace(model, use_prior=False, prior_fit_steps=0)


# stage -> (experiment class, the model config its weights record)
STAGES = {
    "detector": (detector_train.DetectorExperiment, lambda e: det.resolve_config(e.model)),
    "crop_head": (CropHeadExperiment, lambda e: e.model),
    "shape": (ShapeExperiment, lambda e: e.model),
    "refine": (RefineExperiment, lambda e: e.model),
    "refine_no_prior": (RefineExperiment, lambda e: _no_prior(e.model)),
}
# (shipped weights, stage, the last config of the chain that trained them)
CHAINS = [("detector", "detector", SHIPPED["detector"]), ("maskrcnn_amodal", "detector", SHIPPED["maskrcnn_amodal"]),
          ("crop_head", "crop_head", SHIPPED["crop_head"]), ("shape", "shape", SHIPPED["shape"]),
          ("refine", "refine", SHIPPED["refine"]), ("refine_no_prior", "refine_no_prior", SHIPPED["refine"])]


def _digest(stage: str, data: dict, source: str) -> str:
    cls, model = STAGES[stage]
    return config_digest(to_dict(model(from_dict(cls, data, source=source))))


@pytest.mark.parametrize(("weights", "stage", "config"), CHAINS, ids=[c[0] for c in CHAINS])
def test_each_chain_rebuilds_the_shipped_config_hash(weights, stage, config):
    recorded = json.loads((SHIPPED_WEIGHTS / f"{weights}.json").read_text())["config_sha256"]
    chain, init = rounds(config)
    assert init is None and len(chain) >= 2  # from scratch, then fine-tune rounds
    last_path, last = chain[-1]
    assert _digest(stage, last, str(last_path)) == recorded, f"{last_path}: not the shipped {weights} config"
    if stage != "shape":  # every round has the shipped architecture (shape's first round blurs more: sigma 0.5;
        # the refinement's rounds before the last trained on priors as predicted: prior_fit_steps 0)
        cls, model = STAGES[stage]

        def architecture(path, data) -> dict:
            config = to_dict(model(from_dict(cls, data, source=str(path))))
            return {k: v for k, v in config.items() if k != "prior_fit_steps"}

        shipped = architecture(last_path, last)
        for path, data in chain[:-1]:
            assert architecture(path, data) == shipped, f"{path}: not the shipped {weights} architecture"


def test_a_crop_head_read_at_64_pixels_is_not_the_shipped_one():
    (path, data), = rounds("crop_head_cpu")[0]
    recorded = json.loads((SHIPPED_WEIGHTS / "crop_head.json").read_text())["config_sha256"]
    assert data["model"]["roi_size"] == 96
    assert _digest("crop_head", data, str(path)) == recorded
    smaller = {**data, "model": {**data["model"], "roi_size": 64}}
    assert _digest("crop_head", smaller, str(path)) != recorded


def test_every_installed_config_loads_and_ships_with_the_package():
    experiment = detector_train.DetectorExperiment
    kinds = {"orcnn": experiment, "maskrcnn": experiment, "detector": experiment,
             "crop": CropHeadExperiment, "shape": ShapeExperiment, "refine": RefineExperiment}
    names = config_names()
    assert len(names) == 14 and set(SHIPPED.values()) <= {f"{n}.yaml" for n in names}
    for name in names:
        for path, data in rounds(name)[0]:
            from_dict(kinds[name.split("_")[0]], data, source=str(path))  # strict: unknown keys are errors
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():  # a checkout: pip install puts the configs beside the code
        assert '"configs/*.yaml"' in pyproject.read_text().split("[tool.setuptools.package-data]")[1]


def test_train_all_finds_its_default_configs_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["train", "all", "--data", "D", "--out", "R"])
    for option, stage in (("detector_config", "detector"), ("crop_head_config", "crop_head"),
                          ("shape_config", "shape"), ("refine_config", "refine")):
        path = Path(getattr(args, option))
        assert path.is_absolute() and path.is_file() and path.parent == CONFIG_DIR, option
        assert path.name == SHIPPED[stage]
    assert args.shape_finetune_config == "none"  # shape_cpu_sharpen.yaml is the shape chain's second round
    assert [p.name for p, _ in rounds(args.detector_config)[0]] == ["orcnn_cpu_small.yaml",
                                                                     "orcnn_cpu_small_finetune.yaml"]
    assert config_path("orcnn_cpu_small") == config_path("orcnn_cpu_small.yaml") == CONFIG_DIR / "orcnn_cpu_small.yaml"
    with pytest.raises(ConfigError, match=r"^nothing\.yaml: config file not found \(nor an installed config: "):
        config_path("nothing.yaml")


def test_init_names_a_config_or_weights_and_bad_chains_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("init: weights.safetensors\nmodel: {width: 8}\n")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    (tmp_path / "b.yaml").write_text("init: a\nmodel: {width: 8}\ntrain: {lr: 0.001}\n")
    chain, init = rounds(tmp_path / "b.yaml")
    assert [p.name for p, _ in chain] == ["a.yaml", "b.yaml"] and init == tmp_path / "weights.safetensors"
    assert chain[1][1] == {"model": {"width": 8}, "train": {"lr": 0.001}}  # init is not a section
    (tmp_path / "c.yaml").write_text("init: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: init: .*missing\.yaml: file not found$"):
        rounds(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("init: e.yaml\n")
    (tmp_path / "e.yaml").write_text("init: d.yaml\n")
    with pytest.raises(ConfigError, match=r"d\.yaml: init: the chain of configs loops back to this one$"):
        rounds(tmp_path / "d.yaml")
    (tmp_path / "f.yaml").write_text("init: 3\n")
    with pytest.raises(ConfigError, match=r"f\.yaml: init: expected a config or weights path, got 3$"):
        rounds(tmp_path / "f.yaml")


def test_train_all_trains_every_round_from_the_previous_ones_weights(tiny_dataset, tmp_path, monkeypatch):
    import amodal3d.train_all as train_all_module
    from amodal3d.models import crop_head, refine_train, shape_train

    calls = []

    def fake(name):
        def train(*args, init=None, **kwargs):
            folder = Path(args[2] if name == "detector" else args[1])
            calls.append((name, folder.name, None if init is None else Path(init).parent.name))
            return folder / "model.safetensors"
        return train

    monkeypatch.setattr(detector_train, "train_detector", fake("detector"))
    monkeypatch.setattr(crop_head, "train_crop_head", fake("crop_head"))
    monkeypatch.setattr(shape_train, "train_shape", fake("shape"))
    monkeypatch.setattr(refine_train, "train_refine", fake("refine"))
    monkeypatch.setattr(train_all_module, "_install", lambda weights, folder, stem: calls.append(("install", stem,
                                                                                               weights.parent.name)))
    monkeypatch.chdir(tmp_path)
    train_all_module.train_all(str(tiny_dataset), str(tmp_path / "run"), device="cpu", progress=False)
    assert calls == [
        ("detector", "detector", None), ("detector", "detector_finetune", "detector"),
        ("install", "detector", "detector_finetune"),
        ("crop_head", "crop_head", None), ("crop_head", "crop_head_finetune", "crop_head"),
        ("install", "crop_head", "crop_head_finetune"),
        ("shape", "shape", None), ("shape", "shape_finetune", "shape"), ("install", "shape", "shape_finetune"),
        ("refine", "refine", None), ("refine", "refine_finetune", "refine"),
        ("refine", "refine_finetune2", "refine_finetune"), ("install", "refine", "refine_finetune2"),
        ("refine", "refine_no_prior", None), ("refine", "refine_no_prior_finetune", "refine_no_prior"),
        ("refine", "refine_no_prior_finetune2", "refine_no_prior_finetune"),
        ("install", "refine_no_prior", "refine_no_prior_finetune2"),
    ]


def test_a_fine_tune_round_trained_alone_needs_init(capsys):
    from amodal3d.cli import main
    from amodal3d.configs import CONFIG_DIR
    from amodal3d.engine.config import ConfigError, load_experiment
    from amodal3d.models.shape_train import ShapeExperiment

    path = CONFIG_DIR / "shape_cpu_sharpen.yaml"
    with pytest.raises(ConfigError, match=r"shape_cpu_sharpen.yaml: a fine-tune round \(init: shape_cpu.yaml\): "
                                          r"pass the weights it starts from with --init"):
        load_experiment(ShapeExperiment, path)
    experiment = load_experiment(ShapeExperiment, path, init_given=True)
    assert experiment.model.sigma != load_experiment(ShapeExperiment, CONFIG_DIR / "shape_cpu.yaml").model.sigma
    assert main(["train", "shape", "--config", str(path), "--data", "missing", "--out", "run"]) == 2
    assert "pass the weights it starts from with --init" in capsys.readouterr().err
