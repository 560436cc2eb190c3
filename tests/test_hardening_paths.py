"""Where the commands read and write: split names that are plain names, numeric arguments refused at parse
time, outputs checked before any work starts (never an input, never outside --out), inputs that are
regular files (a FIFO would block a reader forever)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import torch
import trimesh

from amodal3d.cli import main
from amodal3d.commands import arguments
from amodal3d.data.generate import GenerateConfig, generate, parse_splits
from amodal3d.data.meshes import load_mesh_file, open_mesh_source
from amodal3d.data.scene import SceneConfig
from amodal3d.errors import Amodal3dError, DataError, MeshError
from amodal3d.paths import check_output_dir, check_output_file, check_regular_file, check_split_name
from conftest import tiny_config

NOT_PLAIN = "is not a plain name"
SMALL = ["--size", "32", "--workers", "1", "--quiet"]


def _listing(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with the bytes of its files: to show what a command wrote or changed."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _refused_by_argparse(argv: list[str], capsys, *fragments: str) -> str:
    with pytest.raises(SystemExit, match="2"):
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _refused(argv: list[str], capsys, message: str) -> None:
    """``main(argv)`` exits 2 with exactly one line on stderr: ``amodal3d: error: MESSAGE``."""
    assert main(argv) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {message}\n"


def _in_thread(function, timeout: float = 30.0):
    """``function()`` in a daemon thread (its value, or its exception raised here); fails the test when
    it does not return within ``timeout``."""
    result = {}

    def run():
        try:
            result["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still blocked after {timeout} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _mesh_folder(root: Path, broken: bool = False) -> Path:
    (root / "chair").mkdir(parents=True)
    for k in range(2):
        path = root / "chair" / f"m{k}.obj"
        if broken:
            path.write_text("not a mesh\n")
        else:
            trimesh.creation.box(extents=(1.0, 0.5 + 0.2 * k, 0.4)).export(path)
    return root


@pytest.fixture
def dataset(tiny_dataset, tmp_path) -> Path:
    """A private copy of the tiny dataset (a test that went wrong would spoil the shared one)."""
    return Path(shutil.copytree(tiny_dataset, tmp_path / "d"))


# ------------------------------------------------------------------------------------------------ paths.py
@pytest.mark.parametrize("name", ["train", "val", "test", "demo_2", "v1.0", "A-b", "x" * 64])
def test_plain_split_names_are_accepted(name):
    assert check_split_name(name) == name
    assert arguments.split_name(name) == name


@pytest.mark.parametrize("name", ["../x", "../../victim", "a/b", "/abs", "", ".hidden", "a..b", "x" * 65, "a b",
                                  "a\\b", "tr\nain", None, 3])
def test_split_names_that_are_not_plain_are_refused(name):
    with pytest.raises(Amodal3dError, match=f"^--split: split name {re.escape(repr(name))} {NOT_PLAIN}"):
        check_split_name(name)
    if isinstance(name, str):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^split name .*{NOT_PLAIN}"):
            arguments.split_name(name)


def test_check_regular_file_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)

    def check():
        try:
            check_regular_file(fifo, "A.json")
        except DataError as error:
            return str(error)

    assert _in_thread(check, 10.0) == f"A.json: {fifo}: not a regular file (a FIFO, socket or device): refused"
    with pytest.raises(DataError, match=f"^{tmp_path}: is a folder, expected a file$"):
        check_regular_file(tmp_path)
    with pytest.raises(DataError, match=f"^{tmp_path / 'missing.json'}: file not found$"):
        check_regular_file(tmp_path / "missing.json")
    (tmp_path / "ok.json").write_text("{}")
    assert check_regular_file(tmp_path / "ok.json") == tmp_path / "ok.json"


def test_check_output_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.json").write_text("{}")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.png").write_bytes(b"png")
    (tmp_path / "file").write_text("")
    assert check_output_file("out.json", ["in.json"]) == Path("out.json")
    assert check_output_file(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new" / "deeper" / "out.json"
    with pytest.raises(Amodal3dError, match=r"^--out: in.json is an input of this command; it would be overwritten"):
        check_output_file("in.json", ["in.json"])
    absolute = tmp_path / "in.json"
    with pytest.raises(Amodal3dError, match=rf"^--json: {absolute} is an input of this command \(in.json\)"):
        check_output_file(absolute, ["in.json"], what="--json")  # absolute against relative
    with pytest.raises(Amodal3dError, match=r"^--out: folder/../in.json is an input of this command \(in.json\)"):
        check_output_file("folder/../in.json", ["in.json"])
    with pytest.raises(Amodal3dError, match=r"^--out: folder/a.png is a file of the input folder folder; it would"):
        check_output_file("folder/a.png", ["folder"])
    assert check_output_file("folder/b.png", ["folder"]) == Path("folder/b.png")  # a new file beside them
    with pytest.raises(Amodal3dError, match=r"^--out: folder is a folder, expected a file name$"):
        check_output_file("folder")
    with pytest.raises(Amodal3dError, match=r"^--out: file is a file, so file/x/out.json cannot be created$"):
        check_output_file("file/x/out.json")


def test_check_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    (tmp_path / "weights").mkdir()
    assert check_output_dir("new/out") == Path("new/out")
    with pytest.raises(Amodal3dError, match=r"^--out: file exists and is not a folder$"):
        check_output_dir("file")
    with pytest.raises(Amodal3dError, match=r"^--out: file is a file, so file/sub cannot be created$"):
        check_output_dir("file/sub")
    with pytest.raises(Amodal3dError, match=rf"^--out: {tmp_path / 'weights'} is an input of this command "
                                            r"\(weights\): refused$"):
        check_output_dir(tmp_path / "weights", ["weights"])


def test_unwritable_outputs_are_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.png").write_bytes(b"png")
    if os.geteuid() == 0:  # root may write anywhere: the check answers as it would for another user
        real = os.access
        monkeypatch.setattr("amodal3d.paths.os.access", lambda p, mode: real(p, mode) and
                            not Path(p).absolute().is_relative_to(locked))
    locked.chmod(0o500)
    try:
        with pytest.raises(Amodal3dError, match=f"^--out: {locked} is not writable, so {locked / 'a.png'} cannot be "
                                                f"written$"):
            check_output_file(locked / "a.png")
        with pytest.raises(Amodal3dError, match=f"^--out: {locked / 'old.png'} is not writable$"):
            check_output_file(locked / "old.png")
        with pytest.raises(Amodal3dError, match=f"^--out: {locked} is not writable, so {locked / 'data'} cannot"):
            check_output_dir(locked / "data")
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------------------------------- arguments.py
@pytest.mark.parametrize("parse, text, message", [
    (arguments.positive_int, "0", "expected a whole number >= 1, got '0'"),
    (arguments.positive_int, "1.5", "expected a whole number, got '1.5'"),
    (arguments.non_negative_int, "-1", "expected a whole number >= 0, got '-1'"),
    (arguments.seed, "-1", "expected a whole number in [0, 4294967295], got '-1'"),
    (arguments.seed, str(2**32), "expected a whole number in [0, 4294967295], got '4294967296'"),
    (arguments.int_range(32, 4096), "100000", "expected a whole number in [32, 4096], got '100000'"),
    (arguments.int_range(None, 5), "6", "expected a whole number <= 5, got '6'"),
    (arguments.probability, "1.5", "expected a number in [0.0, 1.0], got '1.5'"),
    (arguments.probability, "nan", "expected a finite number, got 'nan'"),
    (arguments.open_fraction, "1", "expected a number in (0.0, 1.0), got '1'"),
    (arguments.open_fraction, "0", "expected a number in (0.0, 1.0), got '0'"),
    (arguments.positive_float, "0", "expected a number > 0.0, got '0'"),
    (arguments.positive_float, "inf", "expected a finite number, got 'inf'"),
    (arguments.float_range(None, 2.0, high_open=True), "2", "expected a number < 2.0, got '2'"),
    (arguments.device, "gpu0", "expected auto, cpu, cuda or cuda:N"),
])
def test_argument_types_refuse(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match="^" + re.escape(message)):
        parse(text)


def test_argument_types_accept():
    assert arguments.positive_int("3") == 3 and arguments.non_negative_int("0") == 0
    assert arguments.seed("0") == 0 and arguments.seed("4294967295") == 2**32 - 1
    assert arguments.probability("0") == 0.0 and arguments.probability("1") == 1.0
    assert arguments.open_fraction("0.95") == 0.95 and arguments.positive_float("1e-9") == 1e-9
    assert arguments.device("cpu") == arguments.device("CPU") == "cpu"
    if torch.cuda.is_available():
        assert arguments.device("cuda") == arguments.device("auto") == "cuda:0"
        with pytest.raises(argparse.ArgumentTypeError, match=r"^only \d+ CUDA device\(s\) here$"):
            arguments.device("cuda:99")
    else:
        assert arguments.device("auto") == "cpu"
        with pytest.raises(argparse.ArgumentTypeError, match="^CUDA is not available on this machine"):
            arguments.device("cuda:0")
    wrapped = arguments.checked(parse_splits, "--split")
    assert wrapped("train=2, test=1") == {"train": 2, "test": 1}
    with pytest.raises(argparse.ArgumentTypeError, match="^split name 'a/b' is not a plain name"):
        wrapped("a/b=2")


# ------------------------------------------------------------------ 1. split names: nothing outside --out
def test_generate_split_names_cannot_leave_out(tmp_path, capsys):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "victim.json").write_text("someone's file")
    meshes = _mesh_folder(tmp_path / "meshes")
    before = _listing(tmp_path)
    out = str(tmp_path / "g" / "inner")
    _refused_by_argparse(["generate", "--out", out, "--split", "../../victim=1", *SMALL], capsys,
                         f"argument --split: split name '../../victim' {NOT_PLAIN}")
    _refused_by_argparse(["generate", "--out", out, "--split", "victim=1", "--shapes", str(meshes),
                          "--shapes-split", "../../victim", *SMALL], capsys,
                         f"argument --shapes-split: split name '../../victim' {NOT_PLAIN}")
    _refused_by_argparse(["generate", "--out", out, "--split", "a/b=2", *SMALL], capsys,
                         f"argument --split: split name 'a/b' {NOT_PLAIN}")
    assert _listing(tmp_path) == before


def test_library_functions_refuse_split_names(tmp_path):
    with pytest.raises(Amodal3dError, match=f"^--split: split name '../../victim' {NOT_PLAIN}"):
        parse_splits("train=2,../../victim=1")
    with pytest.raises(Amodal3dError, match=f"^--split: split name 'a/b' {NOT_PLAIN}"):
        GenerateConfig(out=str(tmp_path / "x"), splits={"a/b": 2})
    with pytest.raises(Amodal3dError, match=f"^--shapes-split: split name '../x' {NOT_PLAIN}"):
        tiny_config(tmp_path / "x", shapes_split="../x")
    with pytest.raises(Amodal3dError, match=f"^--shapes-split: split name '../x' {NOT_PLAIN}"):
        open_mesh_source(_mesh_folder(tmp_path / "meshes"), only_split="../x")
    with pytest.raises(DataError, match="^--split: split train is given twice$"):
        parse_splits("train=2,train=3")
    with pytest.raises(DataError, match="^--split: train=0: COUNT must be at least 1$"):
        parse_splits("train=0")
    with pytest.raises(DataError, match=r"^--split: expected NAME=COUNT\[,NAME=COUNT...\], got 'train=²'$"):
        parse_splits("train=²")
    with pytest.raises(DataError, match=r"^--size: expected a whole number in \[32, 4096\], got 0$"):
        tiny_config(tmp_path / "x", scene=SceneConfig(size=0))
    with pytest.raises(DataError, match=r"^--seed: expected a whole number in \[0, 4294967295\], got -1$"):
        tiny_config(tmp_path / "x", seed=-1)
    with pytest.raises(DataError, match=r"^--shard-size: expected a whole number >= 1, got 0$"):
        tiny_config(tmp_path / "x", shard_size=0)
    assert not (tmp_path / "x").exists()


def test_validate_and_evaluate_refuse_split_names(tmp_path, capsys):
    _refused_by_argparse(["validate", str(tmp_path), "--split", "../../x"], capsys,
                         f"argument --split: split name '../../x' {NOT_PLAIN}")
    _refused_by_argparse(["evaluate", "--method", "visible", "--data", str(tmp_path), "--split", "../x",
                          "--json", str(tmp_path / "r.json")], capsys, "argument --split: split name '../x'")
    _refused_by_argparse(["show", str(tmp_path), "--split", "a/b"], capsys, "argument --split: split name 'a/b'")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- 2. inputs are never overwritten
def test_evaluate_refuses_to_overwrite_its_ground_truth_before_running(dataset, tmp_path, capsys, monkeypatch):
    from amodal3d import methods

    monkeypatch.setattr(methods, "build_predictor", lambda *a, **k: pytest.fail("the evaluation ran"))
    truth = dataset / "annotations" / "test.json"
    before = _listing(tmp_path)
    base = ["evaluate", "--method", "visible", "--protocol", "given-visible", "--data", str(dataset), "--quiet"]
    _refused([*base, "--json", str(truth)], capsys,
             f"--json: {truth} is an input of this command; it would be overwritten: refused")
    _refused([*base, "--json", str(tmp_path / "r.json"), "--markdown", str(truth)], capsys,
             f"--markdown: {truth} is an input of this command; it would be overwritten: refused")
    monkeypatch.chdir(dataset)  # the same file, named relative to another folder
    _refused([*base, "--json", "annotations/../annotations/test.json"], capsys,
             f"--json: annotations/../annotations/test.json is an input of this command ({truth}); it would be "
             f"overwritten: refused")
    image = dataset / "images" / "test" / "000001.png"
    _refused([*base, "--json", str(image)], capsys,
             f"--json: {image} is a file of the input folder {dataset / 'images' / 'test'}; it would be "
             f"overwritten: refused")
    _refused([*base, "--json", "r.json", "--markdown", "./r.json"], capsys,
             "--markdown: ./r.json is also the --json file: refused (give two files)")
    assert _listing(tmp_path) == before


def test_convert_refuses_to_overwrite_its_source(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("kins.json").write_text('{"images": [], "annotations": []}')
    folder = Path("cocoa")
    folder.mkdir()
    (folder / "1.json").write_text('{"regions": []}')
    before = _listing(tmp_path)
    _refused(["convert", "kins.json", "--out", "kins.json"], capsys,
             "--out: kins.json is an input of this command; it would be overwritten: refused")
    _refused(["convert", "kins.json", "--out", str(tmp_path / "kins.json")], capsys,
             f"--out: {tmp_path / 'kins.json'} is an input of this command (kins.json); it would be overwritten: "
             f"refused")
    _refused(["convert", "cocoa", "--out", "cocoa/1.json"], capsys,
             "--out: cocoa/1.json is a file of the input folder cocoa; it would be overwritten: refused")
    _refused(["convert", "cocoa", "--out", "cocoa"], capsys, "--out: cocoa is a folder, expected a file name")
    assert _listing(tmp_path) == before


def test_generate_refuses_a_folder_of_someone_elses_dataset(tmp_path, capsys):
    out = tmp_path / "theirs"
    (out / "annotations").mkdir(parents=True)
    (out / "annotations" / "train.json").write_text('{"theirs": true}')
    (out / "images" / "train").mkdir(parents=True)
    (out / "images" / "train" / "000001.png").write_bytes(b"their image")
    before = _listing(tmp_path)
    _refused(["generate", "--out", str(out), "--split", "train=2", *SMALL], capsys,
             f"{out / 'annotations' / 'train.json'}: {out} holds files that no amodal3d generate run recorded "
             f"(no generation.json); they could be overwritten: refused (give another --out)")
    (out / "annotations" / "train.json").unlink()
    _refused(["generate", "--out", str(out), "--split", "val=2", *SMALL], capsys,
             f"{out / 'images' / 'train' / '000001.png'}: {out} holds files that no amodal3d generate run "
             f"recorded (no generation.json); they could be overwritten: refused (give another --out)")
    del before["theirs/annotations/train.json"]
    assert _listing(tmp_path) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "images").write_text("a file where the images go")
    _refused(["generate", "--out", str(tmp_path / "other"), "--split", "val=2", *SMALL], capsys,
             f"--out: {tmp_path / 'other' / 'images'} exists and is not a folder")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["images"]


def test_generate_resumes_and_grows_its_own_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    assert main(["generate", "--out", str(out), "--split", "train=2", *SMALL]) == 0
    first = _listing(out)
    assert main(["generate", "--out", str(out), "--split", "train=2", *SMALL]) == 0  # finished: nothing to do
    assert _listing(out) == first
    assert main(["generate", "--out", str(out), "--split", "val=1", *SMALL]) == 0  # a split added
    assert json.loads((out / "generation.json").read_text())["splits"] == {"train": 2, "val": 1}
    assert (out / "annotations" / "val.json").is_file()


def test_generate_refuses_an_out_inside_its_mesh_folder(tmp_path, capsys):
    meshes = _mesh_folder(tmp_path / "meshes")
    before = _listing(tmp_path)
    _refused(["generate", "--out", str(meshes / "data"), "--split", "test=1", "--shapes", str(meshes),
              "--shapes-split", "test", *SMALL], capsys,
             f"--out: {meshes / 'data'} lies inside the --shapes folder {meshes}: refused (give another --out)")
    assert _listing(tmp_path) == before


# ------------------------------------------------------------------------ 3. arguments refused at parse time
@pytest.mark.parametrize("argv, message", [
    (["generate", "--out", "OUT", "--seed", "-1"], "argument --seed: expected a whole number in [0, 4294967295]"),
    (["generate", "--out", "OUT", "--shard-size", "0"], "argument --shard-size: expected a whole number >= 1"),
    (["generate", "--out", "OUT", "--size", "100000"], "argument --size: expected a whole number in [32, 4096]"),
    (["generate", "--out", "OUT", "--size", "0"], "argument --size: expected a whole number in [32, 4096]"),
    (["generate", "--out", "OUT", "--workers", "0"], "argument --workers: expected a whole number in [1, 1024]"),
    (["generate", "--out", "OUT", "--objects", "0-2"], "argument --objects: expected 1 <= MIN <= MAX <= 100"),
    (["generate", "--out", "OUT", "--objects", "2-101"], "argument --objects: expected 1 <= MIN <= MAX <= 100"),
    (["generate", "--out", "OUT", "--shard", "2/2"], "argument --shard: expected i/n with 0 <= i < n, got '2/2'"),
    (["generate", "--out", "OUT", "--split", "train=0"], "argument --split: train=0: COUNT must be at least 1"),
    (["generate", "--out", "OUT", "--split", "train=1,train=2"], "argument --split: split train is given twice"),
    (["show", "DATA", "--columns", "0"], "argument --columns: expected a whole number >= 1, got '0'"),
    (["show", "DATA", "--n", "0"], "argument --n: expected a whole number >= 1, got '0'"),
    (["shapes", "--category", "chair", "--n", "0"], "argument --n: expected a whole number >= 1, got '0'"),
    (["shapes", "--category", "chair", "--seed", "-3"], "argument --seed: expected a whole number in [0,"),
    (["demo", "--n", "0"], "argument --n: expected a whole number in [1, 100], got '0'"),
    (["demo", "--device", "gpu0"], "argument --device: expected auto, cpu, cuda or cuda:N"),
    (["validate", "DATA", "--max-report", "-1"], "argument --max-report: expected a whole number >= 0, got '-1'"),
    (["compare", "A", "B", "--resamples", "0"], "argument --resamples: expected a whole number in [1, 1000000]"),
    (["compare", "A", "B", "--level", "1.5"], "argument --level: expected a number in (0.0, 1.0), got '1.5'"),
    (["compare", "A", "B", "--seed", "-1"], "argument --seed: expected a whole number in [0, 4294967295]"),
    (["evaluate", "--method", "visible", "--data", "D", "--json", "R", "--limit", "0"],
     "argument --limit: expected a whole number >= 1, got '0'"),
])
def test_bad_numbers_are_refused_at_parse_time(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    _refused_by_argparse(argv, capsys, message)
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_cannot_be_written_are_refused_before_any_work(dataset, tmp_path, capsys, monkeypatch):
    from amodal3d.evaluation import harness
    from amodal3d.pipeline import AmodalSegmenter

    monkeypatch.setattr(harness, "evaluate", lambda *a, **k: pytest.fail("the evaluation ran"))
    monkeypatch.setattr(AmodalSegmenter, "from_pretrained", lambda *a, **k: pytest.fail("the model loaded"))
    monkeypatch.chdir(tmp_path)
    Path("file").write_text("")
    Path("kins.json").write_text('{"images": [], "annotations": []}')
    before = _listing(tmp_path)
    not_a_folder = "--out: file is a file, so file/x.png cannot be created"
    _refused(["generate", "--out", "file", "--split", "train=1", *SMALL], capsys,
             "--out: file exists and is not a folder")
    _refused(["demo", "--out", "file"], capsys, "--out: file exists and is not a folder")
    _refused(["show", str(dataset), "--out", "file/x.png"], capsys, not_a_folder)
    _refused(["shapes", "--category", "chair", "--out", "file/x.png"], capsys, not_a_folder)
    _refused(["convert", "kins.json", "--out", "file/x.json"], capsys,
             "--out: file is a file, so file/x.json cannot be created")
    _refused(["evaluate", "--method", "visible", "--protocol", "given-visible", "--data", str(dataset), "--json",
              "file/r.json"], capsys, "--json: file is a file, so file/r.json cannot be created")
    _refused(["show", str(dataset), "--out", "d"], capsys, "--out: d is a folder, expected a file name")
    Path("demo_out/demo.png").mkdir(parents=True)
    _refused(["demo", "--out", "demo_out"], capsys, "--out: demo_out/demo.png is a folder, expected a file name")
    assert _listing(tmp_path) == {**before, "demo_out": None, "demo_out/demo.png": None}


def test_a_fifo_is_refused_not_read(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"miou": 0.5, "instances": {}}))
    assert _in_thread(lambda: main(["convert", str(fifo), "--out", str(tmp_path / "x.json")])) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {fifo}: not a regular file (a FIFO, socket or device): " \
                                      f"refused\n"
    assert _in_thread(lambda: main(["compare", str(result), str(fifo)])) == 2
    assert capsys.readouterr().err == f"amodal3d: error: {fifo}: not a regular file (a FIFO, socket or device): " \
                                      f"refused\n"
    folder = tmp_path / "cocoa"
    folder.mkdir()
    os.mkfifo(folder / "1.json")
    assert _in_thread(lambda: main(["convert", str(folder), "--out", str(tmp_path / "x.json")])) == 2
    assert "1.json: not a regular file (a FIFO" in capsys.readouterr().err
    assert _in_thread(lambda: main(["evaluate", "--method", "maskrcnn-amodal", "--data", str(tmp_path), "--weights",
                                    str(fifo), "--json", str(tmp_path / "x.json")])) == 2
    assert capsys.readouterr().err == f"amodal3d: error: --weights: {fifo}: not a regular file (a FIFO, socket or " \
                                      f"device): refused\n"
    mesh = tmp_path / "pipe.obj"
    os.mkfifo(mesh)
    with pytest.raises(MeshError, match=f"^{mesh}: not a regular file"):
        _in_thread(lambda: load_mesh_file(mesh))
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------------------ 4. errors name the real cause
def test_a_failed_generate_does_not_refuse_the_corrected_rerun(tmp_path, capsys):
    out = tmp_path / "data"
    _refused(["generate", "--out", str(out), "--split", "train=1", "--shapes", str(tmp_path / "nowhere"), *SMALL],
             capsys, f"{tmp_path / 'nowhere'}: not a folder (give 'procedural' or a ShapeNetCore / mesh folder)")
    assert not out.exists()  # no record of a run that could not start
    broken = _mesh_folder(tmp_path / "broken", broken=True)
    with pytest.warns(UserWarning, match="skipping a broken mesh"):
        assert main(["generate", "--out", str(out), "--split", "test=1", "--shapes", str(broken),
                     "--shapes-split", "test", *SMALL]) == 2
    assert "no mesh could be placed" in capsys.readouterr().err
    assert (out / "generation.json").is_file()  # it failed on its first image: no image, no shard written
    assert main(["generate", "--out", str(out), "--split", "test=1", *SMALL]) == 0  # the record is replaced
    assert json.loads((out / "generation.json").read_text())["shapes"] == "procedural"


def test_other_arguments_name_only_the_settings_that_differ(tiny_dataset, tmp_path):
    out = Path(shutil.copytree(tiny_dataset, tmp_path / "copy"))
    changed = tiny_config(out, seed=4, scene=dataclasses.replace(tiny_config(out).scene, size=128))
    with pytest.raises(DataError, match=rf"^{out / 'generation.json'}: {out} was generated with other arguments "
                                        r"\(--seed: 3 -> 4, --size: 96 -> 128\); use the same arguments to resume, "
                                        r"or another --out$"):
        generate(changed, workers=1, progress=False)


def test_compare_takes_a_relative_and_an_absolute_path_for_the_same_data(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["evaluate", "--method", "visible", "--protocol", "given-visible", "--limit", "1", "--quiet"]
    assert main([*base, "--data", "d", "--json", "a.json"]) == 0
    assert main([*base, "--data", str(dataset), "--json", "b.json"]) == 0
    capsys.readouterr()
    assert main(["compare", "a.json", "b.json", "--resamples", "50"]) == 0
    assert "+0.0" in capsys.readouterr().out
    before = _listing(tmp_path)
    _refused(["compare", "a.json", "b.json", "--json", "b.json"], capsys,
             "--json: b.json is an input of this command; it would be overwritten: refused")
    assert _listing(tmp_path) == before
