"""Hardening of ``amodal3d predict`` (issue 33): outputs keyed on the path relative to the inputs,
``--visible`` matched by path suffix, any per-image failure named while the others run (exit 1),
argument, ``--out`` and image-suffix checks before any work (exit 2, nothing written)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import amodal3d.pipeline
import amodal3d.predict
from amodal3d.cli import main
from amodal3d.data.schema import categories_json
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.masks import decode_rle
from amodal3d.pipeline import AmodalSegmenter
from amodal3d.predict import VisibleEntry, match_visible, output_names, predict_files

RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 255, (40, 48, 3), np.uint8)


def _png(path: Path, array: np.ndarray = NOISE, format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format)
    return path


def _square(x0: int, y0: int, side: int = 14) -> list[list[float]]:
    return [[x0, y0, x0 + side, y0, x0 + side, y0 + side, x0, y0 + side]]


@pytest.fixture(scope="module")
def shipped() -> AmodalSegmenter:
    return AmodalSegmenter.from_pretrained("cpu-small")


@pytest.fixture
def loaded_once(shipped, monkeypatch):
    """predict_files loads the shipped model once for the module (its arguments are the defaults)."""
    monkeypatch.setattr(amodal3d.pipeline.AmodalSegmenter, "from_pretrained", lambda *args, **kwargs: shipped)
    return shipped


@pytest.fixture(scope="module")
def scene_image() -> np.ndarray:
    """A small rendered scene in which the shipped model finds objects."""
    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.scene import SceneConfig, render_scene

    return render_scene(np.random.default_rng([0, 0]), open_mesh_source("procedural", seed=0), "test",
                        SceneConfig(size=96)).image


@pytest.fixture(scope="module")
def scene_count(shipped, scene_image) -> int:
    """How many objects the shipped model finds in ``scene_image`` (some)."""
    count = len(shipped.predict(scene_image).labels)
    assert count > 0
    return count


# ------------------------------------------------------------------------------ output names, matching
def test_output_names_are_paths_relative_to_the_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_names([Path("a/x.png"), Path("a/y.jpg")]) == ["x", "y"]  # one folder: as before
    assert output_names([Path("a/x.png")]) == ["x"]
    assert output_names([Path("a/x.png"), Path("b/x.png")]) == ["a/x", "b/x"]
    assert output_names([Path("a/x.png"), Path("a/sub/x.png"), tmp_path / "b" / "z.png"]) == [
        "a/x", "a/sub/x", "b/z"]
    assert output_names([Path("a/x.png"), Path("a/x.jpg")]) == ["x.png", "x.jpg"]  # differ by suffix only
    assert output_names([Path("a/x.png"), Path("a/x.png")]) == ["x", "x~2"]


def test_visible_entries_match_by_path_suffix(tmp_path):
    a, b = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    entries = [VisibleEntry(1, "b/x.png", []), VisibleEntry(2, "./a//x.png", []), VisibleEntry(3, "c/x.png", [])]
    assert {i: e.image_id for i, e in match_visible(entries, [a, b], "v.json").items()} == {0: 2, 1: 1}
    assert match_visible([VisibleEntry(1, "ax.png", [])], [a], "v.json") == {}  # a suffix of components
    with pytest.raises(DataError, match=rf"v.json: image 1 \('x.png'\) names two inputs, {a} and {b}: ambiguous"):
        match_visible([VisibleEntry(1, "x.png", [])], [a, b], "v.json")
    with pytest.raises(DataError, match=r"v.json: image 1 \('x.png'\) and image 2 \('a/x.png'\) both name "
                                        rf"the input {a}: ambiguous"):
        match_visible([VisibleEntry(1, "x.png", []), VisibleEntry(2, "a/x.png", [])], [a], "v.json")


def test_two_folders_with_one_file_name_keep_both(tmp_path, capsys, monkeypatch):
    """predict a/ b/ with a/x.png and b/x.png: two overlays, two sets of meshes, results naming both,
    and each image completes the visible masks its own --visible entry gives."""
    monkeypatch.chdir(tmp_path)
    _png(tmp_path / "a" / "x.png")
    _png(tmp_path / "b" / "x.png", NOISE[::-1])
    visible = {"images": [{"id": 1, "file_name": "b/x.png"}, {"id": 2, "file_name": "a/x.png"}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "segmentation": _square(20, 20)},
                               {"id": 2, "image_id": 2, "category_id": 5, "segmentation": _square(2, 2)}],
               "categories": categories_json()}
    (tmp_path / "visible.json").write_text(json.dumps(visible))
    assert main(["predict", "a", "b", "--out", "out", "--visible", "visible.json", "--meshes", "obj"]) == 0
    assert "out: 2 image(s), 2 instance(s), 0 failed" in capsys.readouterr().out
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "meshes/a/x_0.obj", "meshes/b/x_0.obj", "overlays/a/x.png", "overlays/b/x.png", "results.json"]
    results = {r["file_name"]: r for r in json.loads((out / "results.json").read_text())}
    assert sorted(results) == [os.path.join("a", "x.png"), os.path.join("b", "x.png")]
    assert results["a/x.png"]["category_id"] == 5 and results["b/x.png"]["category_id"] == 3
    ys, xs = np.nonzero(decode_rle(results["a/x.png"]["visible_segmentation"]))
    assert xs.min() <= 3 and ys.min() <= 3 and xs.max() <= 17  # a's square, not b's
    ys, xs = np.nonzero(decode_rle(results["b/x.png"]["visible_segmentation"]))
    assert xs.min() >= 19 and ys.min() >= 19


def test_ambiguous_visible_entry_is_an_error_before_any_work(tmp_path, capsys):
    a, b = _png(tmp_path / "a" / "x.png"), _png(tmp_path / "b" / "x.png")
    visible = {"images": [{"id": 7, "file_name": "x.png"}], "annotations": [], "categories": categories_json()}
    (tmp_path / "visible.json").write_text(json.dumps(visible))
    out = tmp_path / "out"
    assert main(["predict", str(a), str(b), "--out", str(out), "--visible", str(tmp_path / "visible.json")]) == 2
    assert capsys.readouterr().err == (f"amodal3d: error: {tmp_path / 'visible.json'}: image 7 ('x.png') names two "
                                       f"inputs, {a} and {b}: ambiguous (give file_name the folders that tell "
                                       f"them apart)\n")
    assert not out.exists()


# ------------------------------------------------------------------------------ per-image failures
def test_every_failing_image_is_named_and_the_good_ones_are_written(tmp_path, capsys, monkeypatch, loaded_once,
                                                                    scene_image, scene_count):
    """A 10000 x 10 image (step 1 cannot resize it), a corrupt file, a MemoryError and a RuntimeError
    from inside the model each fail their own image only: exit 1, each named, the good image's results."""
    folder = tmp_path / "images"
    _png(folder / "a_good.png", scene_image)
    _png(folder / "b_wide.png", RNG.integers(0, 255, (10, 10000, 3), np.uint8))
    (folder / "c_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(folder / "d_memory.png")
    _png(folder / "e_torch.png")
    real_read = amodal3d.predict.read_image

    def read(path):
        if path.name == "d_memory.png":
            raise MemoryError()
        if path.name == "e_torch.png":
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
        return real_read(path)

    monkeypatch.setattr(amodal3d.predict, "read_image", read)
    expected = scene_count
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{out}: 1 image(s), {expected} instance(s), 4 failed"
    printed[2] = printed[2].split(" (")[0]  # the reader's own words follow
    assert printed[1:] == [
        f"  failed: {folder / 'b_wide.png'}: 10000x10 image is too elongated for step 1: its detector scales the "
        f"long side to 256 pixels, which leaves the short side under one pixel (aspect ratio at most 256:1); "
        f"crop or pad it",
        f"  failed: {folder / 'c_corrupt.png'}: cannot read the image",
        f"  failed: {folder / 'd_memory.png'}: MemoryError",
        f"  failed: {folder / 'e_torch.png'}: RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"]
    results = json.loads((out / "results.json").read_text())
    assert len(results) == expected and {r["file_name"] for r in results} == {str(folder / "a_good.png")}
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a_good.png"]


def test_an_elongated_image_is_refused_before_the_model(shipped):
    with pytest.raises(DataError, match=r"^10x2561 image is too elongated for step 1: .* at most 256:1"):
        shipped.predict(np.zeros((2561, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"expected a uint8 \(H, W, 3\) RGB image with H, W >= 1, got float32"):
        shipped.predict(np.zeros((8, 8, 3), np.float32))
    assert len(shipped.predict(np.zeros((2560, 10, 3), np.uint8)).labels) == 0  # 256:1 still resizes


def test_results_are_written_when_the_run_stops_part_way(tmp_path, monkeypatch, loaded_once, scene_image,
                                                         scene_count):
    folder = tmp_path / "images"
    _png(folder / "a.png", scene_image)
    _png(folder / "b.png")
    real_read = amodal3d.predict.read_image

    def read(path):
        if path.name == "b.png":
            raise KeyboardInterrupt
        return real_read(path)

    monkeypatch.setattr(amodal3d.predict, "read_image", read)
    assert main(["predict", str(folder), "--out", str(tmp_path / "out"), "--no-overlays"]) == 130
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results) == scene_count
    assert {r["file_name"] for r in results} == {str(folder / "a.png")}


# ------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize("value, message", [
    ("1.5", "expected a number in [0.0, 1.0], got '1.5'"),
    ("-0.1", "expected a number in [0.0, 1.0], got '-0.1'"),
    ("nan", "expected a finite number, got 'nan'"),
    ("x", "expected a number, got 'x'"),
])
def test_score_threshold_outside_0_1_is_refused(tmp_path, capsys, value, message):
    image = _png(tmp_path / "a.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(image), "--out", str(tmp_path / "out"), "--score-threshold", value])
    assert exit_info.value.code == 2
    assert f"argument --score-threshold: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argument, value", [("--fit-steps", "-1"), ("--fit-steps", "1.5"), ("--meshes", "stl")])
def test_other_predict_arguments_are_refused_at_parse_time(tmp_path, capsys, argument, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(_png(tmp_path / "a.png")), "--out", str(tmp_path / "out"), argument, value])
    assert exit_info.value.code == 2 and f"argument {argument}: " in capsys.readouterr().err


def test_library_refuses_bad_arguments_before_any_work(tmp_path):
    image = _png(tmp_path / "a.png")
    out = tmp_path / "out"
    for value in (float("nan"), 1.5, -0.5, True, "0.3"):
        with pytest.raises(ValueError, match=r"score_threshold must be a number in \[0, 1\], got "):
            AmodalSegmenter.from_pretrained("cpu-small", score_threshold=value)
        with pytest.raises(ValueError, match=r"score_threshold must be a number in \[0, 1\], got "):
            predict_files([image], out, score_threshold=value)
    with pytest.raises(ValueError, match=r"fit_steps must be a whole number >= 0, got 1.5"):
        predict_files([image], out, fit_steps=1.5)
    with pytest.raises(ValueError, match=r"meshes must be one of none, obj, glb, not 'stl'"):
        predict_files([image], out, meshes="stl")
    with pytest.raises(ValueError, match=r"unknown mode 'magic'"):
        predict_files([image], out, mode="magic")
    assert not out.exists()


# ------------------------------------------------------------------------------ image suffixes
def test_one_suffix_rule_for_folders_patterns_and_named_files(tmp_path, capsys, loaded_once):
    """A GIF is read in a folder and named; a file of another suffix is skipped in a folder and a
    pattern, and refused when named (naming the supported suffixes)."""
    folder = tmp_path / "images"
    _png(folder / "anim.gif", format="GIF")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--no-overlays"]) == 0
    assert f"{out}: 1 image(s)" in capsys.readouterr().out
    assert main(["predict", str(folder / "anim.gif"), "--out", str(out), "--no-overlays"]) == 0
    assert f"{out}: 1 image(s)" in capsys.readouterr().out
    assert main(["predict", str(folder / "*"), "--out", str(out), "--no-overlays"]) == 0
    assert f"{out}: 1 image(s)" in capsys.readouterr().out
    assert main(["predict", str(folder / "notes.txt"), "--out", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err == (f"amodal3d: error: {folder / 'notes.txt'}: not an image file name "
                                       f"(supported: .png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff, .webp)\n")
    assert main(["predict", str(folder / "*.txt"), "--out", str(tmp_path / "other")]) == 2
    assert f"{folder / '*.txt'}: the pattern matches no image" in capsys.readouterr().err
    assert main(["predict", "", "--out", str(tmp_path / "other")]) == 2  # not the current folder
    assert "'': an empty image argument" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


# ------------------------------------------------------------------------------ --out and --visible
def test_out_that_is_a_file_or_would_overwrite_an_input_is_refused(tmp_path, capsys):
    image = _png(tmp_path / "a.png")
    before = image.read_bytes()
    (tmp_path / "file").write_text("x")
    assert main(["predict", str(image), "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"amodal3d: error: --out: {tmp_path / 'file'} exists and is not a folder\n"
    # predict out/overlays --out out: overlays/a.png would be written over the input out/overlays/a.png
    inside = _png(tmp_path / "run" / "overlays" / "a.png")
    assert main(["predict", str(tmp_path / "run" / "overlays"), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"amodal3d: error: --out: {tmp_path / 'run'} would overwrite the input "
                                       f"{inside} (with {tmp_path / 'run' / 'overlays' / 'a.png'}): refused; "
                                       f"choose another --out\n")
    # --visible OUT/results.json would be overwritten by the results
    visible = tmp_path / "run2" / "results.json"
    visible.parent.mkdir()
    visible.write_text(json.dumps({"images": [], "annotations": []}))
    assert main(["predict", str(image), "--out", str(visible.parent), "--visible", str(visible)]) == 2
    assert f"would overwrite the input {visible}" in capsys.readouterr().err
    # a mesh of a.png (meshes/a_0.obj) would replace the --visible file
    mesh = tmp_path / "run3" / "meshes" / "a_0.obj"
    mesh.parent.mkdir(parents=True)
    mesh.write_text(json.dumps({"images": [], "annotations": []}))
    assert main(["predict", str(image), "--out", str(tmp_path / "run3"), "--visible", str(mesh), "--meshes",
                 "obj"]) == 2
    assert f"would overwrite the input {mesh} (a mesh): refused" in capsys.readouterr().err
    # OUT/overlays is a link to the images' folder: overlays/a.png is the input a.png
    (tmp_path / "run4").mkdir()
    (tmp_path / "run4" / "overlays").symlink_to(tmp_path / "run" / "overlays")
    assert main(["predict", str(inside), "--out", str(tmp_path / "run4")]) == 2
    assert f"would overwrite the input {inside} (with " in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a.png", "file", "run", "run/overlays", "run/overlays/a.png", "run2", "run2/results.json", "run3",
        "run3/meshes", "run3/meshes/a_0.obj", "run4", "run4/overlays"]
    assert image.read_bytes() == before and inside.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_visible_must_be_a_regular_file(tmp_path, capsys):
    image = _png(tmp_path / "a.png")
    fifo = tmp_path / "visible.json"
    os.mkfifo(fifo)
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--visible", str(fifo)]) == 2
    assert capsys.readouterr().err == (f"amodal3d: error: --visible: {fifo}: not a regular file (a FIFO, socket "
                                       f"or device): refused\n")
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--visible", str(tmp_path)]) == 2
    assert f"--visible: {tmp_path}: is a folder, expected a file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_all_names_a_missing_config_and_its_option(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside a checkout (the default configs are installed with the package)
    assert main(["train", "all", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--detector-config",
                 "missing.yaml"]) == 2
    assert capsys.readouterr().err == (
        f"amodal3d: error: --detector-config: config file missing.yaml not found from {tmp_path}; pass its path "
        f"with --detector-config\n")
    (tmp_path / "detector.yaml").write_text("{}")
    assert main(["train", "all", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--detector-config",
                 "detector.yaml", "--crop-head-config", "none", "--shape-config", "none.yaml"]) == 2
    assert "--shape-config: config file none.yaml not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(Amodal3dError, match="--shape-weights: .*missing.safetensors: file not found"):
        from amodal3d.cli import build_parser

        args = build_parser().parse_args(["train", "refine", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                                          "--shape-weights", str(tmp_path / "missing.safetensors")])
        args.handler(args)


@pytest.mark.parametrize("flags", [["--mode", "a3d-no-prior"], ["--no-occluder-constraint"], ["--no-crop-head"],
                                   ["--no-detector-amodal"]])
def test_ablation_switches_are_evaluate_methods_not_predict_options(tmp_path, capsys, flags):
    """The ablations are reachable through ``evaluate --method`` (and PipelineOptions) only."""
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(_png(tmp_path / "a.png")), "--out", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_pipeline_options_are_one_frozen_checked_object():
    import dataclasses

    from amodal3d.methods import METHODS, PIPELINE_METHODS
    from amodal3d.pipeline import PipelineOptions

    options = PipelineOptions(fit_steps=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.fit_steps = 4
    assert options.replace(mode="prior-only").mode == "prior-only" and options.mode == "a3d"
    for changes, message in (({"mode": "magic"}, "unknown mode 'magic'"), ({"keep_by": "x"}, "keep_by"),
                             ({"fit_steps": -1}, "fit_steps"), ({"score_threshold": 2}, "score_threshold")):
        with pytest.raises(ValueError, match=message):
            options.replace(**changes)
    # every A3D method of `evaluate --method` is a set of pipeline options
    assert set(PIPELINE_METHODS) <= set(METHODS)
    assert {PipelineOptions(**fields).mode for fields in PIPELINE_METHODS.values()} == {
        "a3d", "a3d-no-prior", "a3d-no-refine", "prior-only"}
