"""Training that would diverge, run on nothing or resume the wrong run stops with one clear line
(issue 33): config values checked when read (file and key named), CLI flags checked by argparse, a
non-finite loss / gradient / weight stops training without touching the last checkpoint or exporting
weights, weights with NaN/inf are neither written nor read, an empty split is refused before training."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from amodal3d.cli import main
from amodal3d.configs import CONFIG_DIR
from amodal3d.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, seed_everything
from amodal3d.engine.config import ConfigError, from_dict, load_experiment, to_dict
from amodal3d.engine.trainer import TrainConfig, Trainer, TrainingError
from amodal3d.engine.weights import load_model, load_weights, read_safetensors, save_weights
from amodal3d.errors import Amodal3dError, DataError, WeightsError
from amodal3d.models.detector_train import DetectorExperiment
from amodal3d.models.shape import ShapeConfig, ShapePrior
from amodal3d.models.shape_train import ShapeExperiment

TINY_SHAPE = ("model: {roi_size: 32, width: 8, feature_dim: 32, hypotheses: 2}\n"
              "train: {batch_size: 4, epochs: 1, checkpoint_every: 1, log_every: 1, seed: 2}\n")


# ------------------------------------------------------------------------------------------------ configs
def test_lr_inf_in_a_config_exits_2_naming_the_file_and_key_before_training(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "inf.yaml"
    config.write_text("train:\n  lr: .inf\n")
    out = tmp_path / "run"
    code = main(["train", "shape", "--data", str(tiny_dataset), "--out", str(out), "--config", str(config),
                 "--quiet"])
    assert code == 2
    assert capsys.readouterr().err == f"amodal3d: error: {config}: train.lr: expected a finite number, got inf\n"
    assert not out.exists()  # refused before anything started


@pytest.mark.parametrize("value, message", [
    ("abc", "expected a number, got 'abc'"),
    ("", "expected a number, got null"),
    ("[0.1]", "expected a number, got [0.1]"),
    (".nan", "expected a finite number, got nan"),
    ("-0.1", "must be > 0, got -0.1"),
    ("0", "must be > 0, got 0.0"),
])
def test_config_lr_of_the_wrong_type_or_range_is_named(tmp_path, value, message):
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  lr: {value}\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{config}: train.lr: {message}')}$"):
        load_experiment(ShapeExperiment, config)


@pytest.mark.parametrize("key, value, message", [
    ("batch_size", 0, "batch_size: must be >= 1, got 0"),
    ("epochs", -1, "epochs: must be >= 1, got -1"),
    ("max_iters", 0, "max_iters: must be >= 1, got 0"),
    ("workers", -2, "workers: must be >= 0, got -2"),
    ("weight_decay", -1e-4, "weight_decay: must be >= 0, got -0.0001"),
    ("momentum", 1.0, "momentum: must be in [0, 1), got 1.0"),
    ("betas", [0.9, 1.5], "betas[1]: must be in [0, 1), got 1.5"),
    ("seed", -1, "seed: must be in [0, 4294967295], got -1"),
    ("clip_grad_norm", 0, "clip_grad_norm: must be > 0, got 0.0"),
    ("min_lr_ratio", 2, "min_lr_ratio: must be in [0, 1], got 2.0"),
    ("milestones", [0.5, float("inf")], "milestones[1]: expected a finite number, got inf"),
    ("batch_size", 2.5, "batch_size: expected an integer, got 2.5"),
])
def test_every_train_setting_is_range_checked(key, value, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(f'x.yaml: train.{message}')}$"):
        from_dict(ShapeExperiment, {"train": {key: value}}, source="x.yaml")


def test_command_line_overrides_are_checked_like_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^command line: train\.lr: expected a finite number, got nan$"):
        load_experiment(ShapeExperiment, None, {"lr": float("nan")})
    with pytest.raises(ConfigError, match=r"^command line: train\.batch_size: must be >= 1, got 0$"):
        load_experiment(ShapeExperiment, None, {"batch_size": 0})


def test_detector_experiment_split_and_crop_head_box_targets_are_checked():
    with pytest.raises(ConfigError, match=r"^d\.yaml: split: split name '\.\./x' is not a plain name"):
        from_dict(DetectorExperiment, {"split": "../x"}, source="d.yaml")
    from amodal3d.models.crop_head import CropHeadExperiment
    with pytest.raises(ConfigError, match=r"^c\.yaml: box_targets: 'both' is not one of 'amodal', 'visible'$"):
        from_dict(CropHeadExperiment, {"box_targets": "both"}, source="c.yaml")


@pytest.mark.parametrize("argv, flag, message", [
    (["train", "crop-head", "--lr", "nan"], "--lr", "expected a finite number, got 'nan'"),
    (["train", "detector", "--config", "x.yaml", "--lr", "-1"], "--lr", "expected a number > 0.0, got '-1'"),
    (["train", "refine", "--shape-weights", "s", "--lr", "inf"], "--lr", "expected a finite number, got 'inf'"),
    (["train", "crop-head", "--batch-size", "0"], "--batch-size", "expected a whole number >= 1, got '0'"),
    (["train", "crop-head", "--threads", "0"], "--threads", "expected a whole number >= 1, got '0'"),
    (["train", "crop-head", "--seed", "-1"], "--seed", "expected a whole number in [0, 4294967295], got '-1'"),
    (["train", "shape", "--limit-images", "-1"], "--limit-images", "expected a whole number >= 1, got '-1'"),
    (["train", "shape", "--split", "../x"], "--split", "split name '../x' is not a plain name"),
])
def test_bad_training_flags_are_argparse_errors(argv, flag, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--data", "d", "--out", "o"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"amodal3d {' '.join(argv[:2])}: error: argument {flag}: {message}"), err


# ------------------------------------------------------------------------------------------------ divergence
class Toy(nn.Module):
    """y = w.x + b; ``nan_at`` (1-based count of training calls) makes that call's loss NaN."""

    def __init__(self, nan_at: int | None = None, scale: float = 1.0, grad_nan: bool = False):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.nan_at, self.scale, self.grad_nan, self.calls = nan_at, scale, grad_nan, 0

    def forward(self, inputs, targets=None):
        pred = self.linear(inputs).squeeze(-1)
        self.calls += 1
        loss = self.scale * ((pred - targets) ** 2).mean()
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        if self.grad_nan:  # finite value (0), NaN gradient (d sqrt(x)/dx at 0)
            loss = loss + (self.linear.weight * 0).sum().sqrt()
        return pred, {"loss_mse": loss}


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n: int = 22):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _trainer(out: Path, model: nn.Module, run_config: dict | None = None, **changes) -> Trainer:
    config = TrainConfig(**{"epochs": 1, "batch_size": 4, "lr": 0.05, "checkpoint_every": 4, "log_every": 1,
                            **changes})
    seed_everything(0)
    return Trainer(model, ToyData(), config, out, run_config=run_config or {"model": {"toy": 1}}, progress=False)


def test_a_nan_loss_mid_training_keeps_the_last_checkpoint_and_weights(tmp_path):
    out = tmp_path / "run"
    _trainer(out, Toy()).fit_and_export("toy", {})  # 6 iterations, finished: checkpoint + weights
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "model.safetensors", "model.json")}
    # two more epochs: resumes at iteration 6; the 2nd step of this run (iteration 8) has a NaN loss
    trainer = _trainer(out, Toy(nan_at=2), epochs=3)
    with pytest.raises(TrainingError, match=rf"^train: non-finite loss at iteration 8: loss_mse is not finite "
                                            rf"\(loss_mse=nan\); training stopped without exporting weights, "
                                            rf"{out / 'checkpoint.pt'} \(the last good state\) is kept"):
        trainer.fit_and_export("toy", {})
    assert {name: (out / name).read_bytes() for name in before} == before  # iteration 8 would have saved
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 6
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["iteration"] == 8


def test_weights_made_non_finite_by_a_step_are_caught_before_any_save(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(TrainConfig, "__post_init__", lambda self: None)  # an lr over its bound (10): overflow
    trainer = _trainer(out, Toy(scale=1e10), optimizer="sgd", lr=1e38, momentum=0.0, checkpoint_every=1)
    with pytest.raises(TrainingError, match=r"^train: non-finite weights after the update of iteration 1: "
                                            r"linear\.weight is not finite .*no checkpoint was written"):
        trainer.fit_and_export("toy", {})
    assert not (out / "checkpoint.pt").exists() and not (out / "model.safetensors").exists()


def test_a_non_finite_gradient_stops_training_before_the_update(tmp_path):
    model = Toy(grad_nan=True)
    start = model.linear.weight.detach().clone()
    with pytest.raises(TrainingError, match=r"^train: non-finite gradient at iteration 1: the gradient of "
                                            r"linear\.weight is not finite \(loss "):
        _trainer(tmp_path / "run", model).fit()
    assert torch.equal(model.linear.weight.detach(), start)  # the optimiser never stepped


def test_a_nan_loss_in_train_shape_exits_2_naming_the_iteration(tiny_dataset, tmp_path, capsys, monkeypatch):
    config = tmp_path / "shape.yaml"
    config.write_text(TINY_SHAPE)
    out = tmp_path / "run"
    original, seen = ShapePrior.forward, {}

    def forward(self, inputs, targets=None):
        output, losses = original(self, inputs, targets)
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] == 3:  # iteration 3; the checkpoint of iteration 2 is on disk
            seen["checkpoint"] = (out / "checkpoint.pt").read_bytes()
            losses = {**losses, "loss_silhouette": losses["loss_silhouette"] * math.inf}
        return output, losses

    monkeypatch.setattr(ShapePrior, "forward", forward)
    code = main(["train", "shape", "--data", str(tiny_dataset), "--out", str(out), "--config", str(config),
                 "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("amodal3d: error: shape: non-finite loss at iteration 3: loss_silhouette is not finite "
                          "(loss_silhouette=inf, ") and err.count("\n") == 1
    assert (out / "checkpoint.pt").read_bytes() == seen["checkpoint"]
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 2
    assert not (out / "model.safetensors").exists() and not (out / "model.json").exists()


# ------------------------------------------------------------------------------------------------ weights
def test_weights_holding_nan_are_refused_naming_the_file_and_tensor(tmp_path):
    save_weights(tmp_path / "good", {"a.weight": torch.ones(2), "b.weight": torch.ones(3)}, "toy", {})
    path = tmp_path / "good.safetensors"
    tensors, metadata = read_safetensors(path)
    tensors["b.weight"] = torch.tensor([1.0, float("nan"), float("inf")])
    path.write_bytes(st_save(tensors, metadata=metadata))
    message = rf"^{path}: tensor 'b\.weight' holds NaN/inf values \(2 of 3\): weights of a diverged training run"
    with pytest.raises(WeightsError, match=message):
        read_safetensors(path)
    with pytest.raises(WeightsError, match=message):
        load_weights(tmp_path / "good", "toy")
    with pytest.raises(WeightsError, match=message):
        load_model(path, "toy", lambda config: nn.Linear(1, 1), ShapeConfig)


def test_save_weights_refuses_nan_and_an_overflowing_fp16_cast(tmp_path):
    with pytest.raises(WeightsError, match=rf"^{tmp_path / 'w.safetensors'}: not written: tensor 'x' holds "
                                           r"NaN/inf values$"):
        save_weights(tmp_path / "w", {"x": torch.tensor([float("nan")])}, "toy", {})
    with pytest.raises(WeightsError, match=r"tensor 'big' holds NaN/inf values \(after the cast to torch\.float16"):
        save_weights(tmp_path / "w", {"big": torch.tensor([1e6])}, "toy", {}, dtype=torch.float16)
    assert not list(tmp_path.iterdir())


def test_shape_init_of_another_kind_is_refused_before_the_rois(tiny_dataset, tmp_path, capsys):
    save_weights(tmp_path / "refine", {"x": torch.ones(1)}, "refine", {})
    config = tmp_path / "shape.yaml"
    config.write_text(TINY_SHAPE)
    code = main(["train", "shape", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--config",
                 str(config), "--init", str(tmp_path / "refine.safetensors"), "--quiet"])
    assert code == 2
    assert capsys.readouterr().err == (f"amodal3d: error: {tmp_path / 'refine.safetensors'}: holds 'refine' "
                                       "weights, expected 'shape-prior'\n")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ data, resume
def _split(root: Path, tiny_dataset: Path, images: bool) -> Path:
    data = json.loads((tiny_dataset / "annotations" / "train.json").read_text())
    data = {**data, "images": data["images"] if images else [], "annotations": []}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.json").write_text(json.dumps(data))
    return root / "annotations" / "train.json"


@pytest.mark.parametrize("command", ["shape", "crop-head", "refine", "detector"])
def test_an_empty_split_is_refused_before_training(tiny_dataset, tmp_path, capsys, command):
    empty = _split(tmp_path / "empty", tiny_dataset, images=False)
    bare = _split(tmp_path / "bare", tiny_dataset, images=True)
    extra = {"shape": [], "crop-head": ["--config", str(CONFIG_DIR / "crop_head_cpu.yaml")],
             "refine": ["--shape-weights", str(tmp_path / "shape.safetensors")],
             "detector": ["--config", str(CONFIG_DIR / "detector_cpu_small.yaml")]}[command]
    if command == "refine":  # an untrained shape model is enough: the split is refused first
        shape_config = ShapeConfig(roi_size=32, width=8, feature_dim=32, hypotheses=2)
        save_weights(tmp_path / "shape", ShapePrior(shape_config).state_dict(), "shape-prior", to_dict(shape_config))
    for data, problem in ((empty, "split 'train' has no images"),
                          (bare, r"split 'train' has no annotated objects (6 image(s), 0 annotations)")):
        code = main(["train", command, "--data", str(data.parents[1]), "--out", str(tmp_path / "run"), "--quiet",
                     *extra])
        assert code == 2
        assert capsys.readouterr().err == f"amodal3d: error: {data}: {problem}; nothing to train on\n"
    assert not (tmp_path / "run").exists()


def test_limit_images_below_one_is_refused_by_the_library(tiny_dataset, tmp_path):
    from amodal3d.engine.trainer import check_training_split

    with pytest.raises(Amodal3dError, match=r"^--limit-images: expected a whole number >= 1, got -1$"):
        check_training_split(tiny_dataset, "train", -1)
    assert len(check_training_split(tiny_dataset, "train", 1).images) == 6
    bare = _split(tmp_path / "bare", tiny_dataset, images=True)
    with pytest.raises(DataError, match=f"^{re.escape(str(bare))}: the first 2 image\\(s\\) of split 'train' has no "
                                        r"annotated objects \(2 image\(s\), 0 annotations\); nothing to train on$"):
        check_training_split(bare.parents[1], "train", 2)


def test_resume_refuses_optimiser_settings_the_checkpoint_would_override(tmp_path):
    out = tmp_path / "run"
    run = {"model": {"toy": 1}, "train": {"lr": 0.05, "optimizer": "adamw"}}
    _trainer(out, Toy(), run).fit(stop_after=4)
    other = {"model": {"toy": 1}, "train": {"lr": 0.01, "optimizer": "adamw"}}
    with pytest.raises(TrainingError, match=rf"^{out / 'checkpoint.pt'}: the run in {out} was started with "
                                            r"train\.lr 0\.05, this config asks for 0\.01 \(a resume keeps the "
                                            r"checkpoint's optimiser settings\); use a new --out folder"):
        _trainer(out, Toy(), other, lr=0.01).fit()
    assert _trainer(out, Toy(), run).fit().finished  # the same settings resume


def test_resume_refuses_a_checkpoint_with_nan_or_of_another_model(tmp_path):
    out = tmp_path / "run"
    _trainer(out, Toy()).fit(stop_after=4)
    state = load_checkpoint(out / "checkpoint.pt")

    class Wider(Toy):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 2)

    with pytest.raises(CheckpointError, match=rf"^{out / 'checkpoint.pt'}: the checkpoint does not fit this run "
                                              r"\(Error\(s\) in loading state_dict"):
        _trainer(out, Wider()).fit()
    state["model"]["linear.bias"] = torch.tensor([float("nan")])
    save_checkpoint(out / "checkpoint.pt", {k: v for k, v in state.items() if k not in ("format", "version")})
    with pytest.raises(CheckpointError, match=r"tensor 'linear\.bias' holds NaN/inf values; the checkpoint is "
                                              r"not usable"):
        _trainer(out, Toy()).fit()


def test_train_all_reads_every_config_before_the_first_stage(tiny_dataset, tmp_path):
    from amodal3d.train_all import train_all

    root = CONFIG_DIR
    bad = tmp_path / "refine.yaml"
    bad.write_text("train: {lr: .inf}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: train\.lr: expected a finite number, got inf$"):
        train_all(str(tiny_dataset), str(tmp_path / "all"), str(root / "detector_cpu_small.yaml"),
                  str(root / "shape_cpu.yaml"), str(bad), device="cpu", progress=False)
    assert not (tmp_path / "all").exists()


@pytest.mark.parametrize("command", ["shape", "crop-head", "detector"])
def test_train_out_is_a_folder_other_than_the_data(tiny_dataset, tmp_path, capsys, command):
    config = [] if command == "shape" else ["--config", str(tmp_path / "never-read.yaml")]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["train", command, "--data", str(tiny_dataset), "--out", str(afile), "--quiet", *config]) == 2
    assert capsys.readouterr().err.startswith(f"amodal3d: error: --out: {afile} exists and is not a folder")
    assert main(["train", command, "--data", str(tiny_dataset), "--out", str(tiny_dataset), "--quiet", *config]) == 2
    assert capsys.readouterr().err.startswith(f"amodal3d: error: --out: {tiny_dataset} is an input of this command")
    assert afile.read_text() == "x" and not (tiny_dataset / "checkpoint.pt").exists()


def test_export_mesh_refuses_an_unknown_format_before_reading(tmp_path, capsys):
    out = tmp_path / "mesh.txt"
    assert main(["export-mesh", "--weights", str(tmp_path / "none.safetensors"), "--data", str(tmp_path),
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"amodal3d: error: --out: {out}: unknown mesh format 'txt' "
                                       "(use .obj, .glb, .ply, .stl)\n")
    with pytest.raises(SystemExit):
        main(["export-mesh", "--weights", "w", "--data", "d", "--out", "m.obj", "--instance", "-1"])
    assert "argument --instance: expected a whole number >= 0, got '-1'" in capsys.readouterr().err


def test_export_mesh_of_a_split_without_instances_is_a_clear_error(tiny_dataset, tmp_path, capsys):
    shape_config = ShapeConfig(roi_size=32, width=8, feature_dim=32, hypotheses=2)
    save_weights(tmp_path / "shape", ShapePrior(shape_config).state_dict(), "shape-prior", to_dict(shape_config))
    empty = _split(tmp_path / "data", tiny_dataset, images=False)
    assert main(["export-mesh", "--weights", str(tmp_path / "shape.safetensors"), "--data", str(tmp_path / "data"),
                 "--split", "train", "--out", str(tmp_path / "m.obj")]) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {empty}: split 'train' has no instances; nothing to export\n"
    assert not (tmp_path / "m.obj").exists()
