"""Crash safety for real: ``generate`` and ``train shape`` run as subprocesses, killed with SIGKILL at
random moments (each time after some visible progress), then rerun to completion. The result must
equal that of an uninterrupted run, and at no kill moment is a partial file left under its final name.

Each subprocess is a fresh interpreter that runs ``amodal3d.cli.main`` (what ``python -m amodal3d`` runs);
it does its imports (torch, trimesh: seconds) before it is told to go, while the run before it works, so
that start-up is not paid in turn four times a test."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from amodal3d.cli import main
from amodal3d.data.generate import generate
from amodal3d.engine.checkpoint import load_checkpoint
from amodal3d.engine.weights import read_safetensors
from conftest import tiny_config

# ``amodal3d ARGS`` once a line arrives on stdin, the command's imports done before
CLI = "import sys, amodal3d.cli, {module}; sys.stdin.readline(); sys.exit(amodal3d.cli.main(sys.argv[1:]))"
IMPORTS = {"generate": "amodal3d.data.generate", "train": "amodal3d.models.shape_train"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TEMP = re.compile(r"^\..+\.[^.]+\.tmp$")  # amodal3d.io's temporaries: .NAME.RANDOM.tmp beside NAME
KILLS = 3
TIMEOUT = 180


@contextlib.contextmanager
def _launcher() -> Iterator[Callable[[list[str]], subprocess.Popen]]:
    """``start(args)``: a subprocess, in a session of its own, that imports and then waits to be told to
    run ``amodal3d ARGS`` (:func:`_go`). Those never told, or still running, are killed on the way out."""
    started: list[subprocess.Popen] = []

    def start(args: list[str]) -> subprocess.Popen:
        started.append(subprocess.Popen([sys.executable, "-c", CLI.format(module=IMPORTS[args[0]]), *args], env=ENV,
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True))
        return started[-1]

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for stream in (process.stdin, process.stderr):
                stream.close()


def _go(process: subprocess.Popen) -> None:
    process.stdin.write(b"go\n")
    process.stdin.close()


def _run(process: subprocess.Popen) -> None:
    """Let the command run to its end: it must succeed."""
    _go(process)
    process.wait(timeout=TIMEOUT)  # (a --quiet run writes far less to stderr than a pipe holds)
    assert process.returncode == 0, process.stderr.read().decode(errors="replace")[-2000:]


def _kill_mid_run(process: subprocess.Popen, progress: Callable[[], int], needed: int, delay: float) -> bool:
    """Let the command run, wait until ``progress()`` has grown by ``needed``, wait ``delay`` seconds more,
    then SIGKILL it (its whole process group). Returns whether it was still running when killed."""
    before = progress()
    _go(process)
    deadline = time.monotonic() + TIMEOUT
    try:
        while progress() < before + needed and process.poll() is None:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)
        time.sleep(delay)
        alive = process.poll() is None
        if alive:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr = process.stderr.read().decode(errors="replace")
    assert alive or process.returncode == 0, stderr[-2000:]
    return alive


def _plant_temporaries(root: Path, *paths: str) -> None:
    """Temporaries as a writer killed before its rename leaves them (a run killed by chance may leave none)."""
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"partial")


def _temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and TEMP.match(p.name))


def _check_complete(path: Path) -> None:
    """Every file under its final name reads back whole (temporaries are skipped)."""
    suffix = path.suffix
    if suffix == ".json":
        json.loads(path.read_bytes())
    elif suffix == ".jsonl":
        text = path.read_text()
        assert text.endswith("\n"), f"{path}: ends inside a record"
        for line in text.splitlines():
            json.loads(line)
    elif suffix == ".yaml":
        assert isinstance(yaml.safe_load(path.read_text()), dict)
    elif suffix == ".png":
        with Image.open(path) as image:
            image.load()  # decodes every row: a truncated PNG raises
    elif suffix == ".pt":
        load_checkpoint(path)
    elif suffix == ".safetensors":
        read_safetensors(path)
    elif suffix == ".npz":
        with np.load(path) as data:
            [data[k] for k in data.files]
    else:
        raise AssertionError(f"{path}: unexpected file")


def _check_no_partial_file(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not TEMP.match(path.name):
            _check_complete(path)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_generate_killed_at_random_moments_resumes_to_the_same_dataset(tmp_path):
    """Three SIGKILLs at random moments, then a rerun: the same files, byte for byte; parts and images
    on disk are always whole, and a shard's part is only there once its images are."""
    args = ["generate", "--split", "train=36,test=18", "--size", "64", "--seed", "5", "--shard-size", "3",
            "--workers", "1", "--quiet"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    rng = random.Random(0)

    def images_done() -> int:
        return sum(1 for _ in out.glob("images/*/*.png"))

    alive = []
    with _launcher() as start:
        upcoming = start([*args, "--out", str(out)])  # imports while the reference runs
        assert main([*args, "--out", str(reference)]) == 0  # in-process: the same code, without a start-up
        for _ in range(KILLS):
            process, upcoming = upcoming, start([*args, "--out", str(out)])  # the next imports meanwhile
            alive.append(_kill_mid_run(process, images_done, 1, rng.uniform(0.0, 0.6)))
            _check_no_partial_file(out)
            for part in out.glob("annotations/parts/*/*.json"):
                for image in json.loads(part.read_text())["images"]:
                    assert (out / "images" / part.parent.name / image["file_name"]).is_file()
        assert any(alive), "every kill came after the run had finished"
        _plant_temporaries(out, "images/train/.000036.png.k1ll3d_x.tmp", "annotations/.test.json.k1ll3d_x.tmp")
        done = {part: part.stat().st_mtime_ns for part in out.glob("annotations/parts/*/*.json")}
        _run(upcoming)
    assert not _temporaries(out)
    assert {part: part.stat().st_mtime_ns for part in done} == done  # resumed: finished shards kept
    expected, actual = _files(reference), _files(out)
    assert sorted(actual) == sorted(expected)
    assert [name for name in expected if actual[name] != expected[name]] == []


@pytest.mark.slow
def test_train_killed_at_random_moments_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    """``train shape`` killed three times at random moments (each after a checkpoint of its own), then
    rerun: it resumes, and the exported weights equal those of an uninterrupted run bit for bit."""
    config = tmp_path / "shape.yaml"
    config.write_text("model: {roi_size: 32, width: 8, feature_dim: 32, hypotheses: 2}\n"
                      "train: {batch_size: 4, epochs: 5, checkpoint_every: 1, log_every: 1, seed: 2}\n")
    args = ["train", "shape", "--data", str(tiny_dataset), "--config", str(config), "--device", "cpu", "--quiet"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    rng = random.Random(1)

    def log_lines() -> int:
        try:
            return (out / "log.jsonl").read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    alive = []
    with _launcher() as start:
        upcoming = start([*args, "--out", str(out)])  # imports while the reference runs
        assert main([*args, "--out", str(reference)]) == 0  # in-process: the same code, without a start-up
        for _ in range(KILLS):
            process, upcoming = upcoming, start([*args, "--out", str(out)])  # the next imports meanwhile
            # 3 log lines: the start/resume event and two iterations, so this run has saved a checkpoint
            alive.append(_kill_mid_run(process, log_lines, 3, rng.uniform(0.0, 0.8)))
            _check_no_partial_file(out)
        assert any(alive), "every kill came after the run had finished"
        _plant_temporaries(out, ".checkpoint.pt.k1ll3d_x.tmp", ".model.safetensors.k1ll3d_x.tmp")
        _run(upcoming)
    assert not _temporaries(out)
    events = [json.loads(line).get("event") for line in (out / "log.jsonl").read_text().splitlines()]
    # the first run saved a checkpoint before its kill: every later run resumed (or found the run finished)
    assert events.count("start") == 1 and "resume" in events and events[-1] == "finished"

    # not byte for byte: safetensors writes its metadata in a random order (a Rust HashMap)
    expected, expected_metadata = read_safetensors(reference / "model.safetensors")
    actual, metadata = read_safetensors(out / "model.safetensors")
    assert sorted(actual) == sorted(expected) and metadata == expected_metadata
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype and torch.equal(actual[name], tensor), name
    for name in ("model.json", "config.yaml", "reconstructions.png"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    final, ref = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(reference / "checkpoint.pt")
    assert final["iteration"] == ref["iteration"] and final["finished"]
    for key, value in ref["optimizer"]["state"].items():
        for field, tensor in value.items():
            assert torch.equal(final["optimizer"]["state"][key][field], tensor), (key, field)


def test_a_cluster_shard_removes_only_the_temporaries_of_its_own_shards(tmp_path):
    """Runs of a cluster share the folder: a run deletes the temporaries of its own shards' files only
    (another run may be writing the rest); the run that owns every shard deletes them all."""
    own = ["images/train/.000001.png.k1ll3d_x.tmp", "annotations/parts/train/.00000.json.k1ll3d_x.tmp"]
    shared = ["images/train/.000003.png.k1ll3d_x.tmp", "annotations/parts/train/.00001.json.k1ll3d_x.tmp",
              "annotations/.train.json.k1ll3d_x.tmp", ".generation.json.k1ll3d_x.tmp"]
    _plant_temporaries(tmp_path, *own, *shared)
    generate(tiny_config(tmp_path, splits={"train": 4}), shard=(0, 2), progress=False)
    assert sorted(str(p.relative_to(tmp_path)) for p in _temporaries(tmp_path)) == sorted(shared)
    generate(tiny_config(tmp_path, splits={"train": 4}), progress=False)
    assert not _temporaries(tmp_path)
