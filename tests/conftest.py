"""Shared fixtures: one tiny generated dataset per test session (64x64 images, a few shards)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from amodal3d.data.generate import GenerateConfig, generate
from amodal3d.data.scene import SceneConfig

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
# A native-COCOA folder made for the tests (tests/fixtures/make_cocoa_tiny.py): two 32x24 synthetic images
# whose regions are rectangles and rectilinear polygons, so every converted figure is known exactly.
COCOA_TINY = Path(__file__).resolve().parent / "fixtures" / "cocoa_tiny"

# One thread per process: on a 2-core machine, tests that start worker or DDP processes would
# otherwise oversubscribe the cores (OpenMP threads spinning against each other).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
TINY_SCENE = SceneConfig(size=96)


def tiny_config(out: Path, **changes) -> GenerateConfig:
    config = GenerateConfig(out=str(out), splits={"train": 6, "test": 4}, seed=3, shard_size=2,
                            scene=TINY_SCENE)
    return dataclasses.replace(config, **changes)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate(tiny_config(out), workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def cocoa_dir() -> Path:
    path = FIXTURES / "cocoa_demo"
    if not path.is_dir():
        pytest.skip("shared/fixtures/cocoa_demo is not beside the repository")
    return path
