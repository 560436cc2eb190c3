"""Training checkpoints that resume exactly.

A checkpoint is one ``torch.save`` file written atomically (temporary file + ``os.replace``) whose
content is restricted to tensors, numbers, strings, lists, tuples, dicts and None, so it loads with
``torch.load(weights_only=True)`` (no arbitrary unpickling). It holds the model, optimiser and
scheduler states, the RNG states of python / numpy / torch (CPU and CUDA) of every rank, and the
position in the run (epoch, batch within the epoch, global iteration). Exported weights are
safetensors (see :mod:`amodal3d.engine.weights`); checkpoints are only for resuming.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amodal3d.errors import Amodal3dError
from amodal3d.io import atomic_write_bytes

FORMAT = "amodal3d-checkpoint"
VERSION = 1
SEED_MAX = 2**32 - 1  # seeds are in [0, SEED_MAX] (numpy's range; torch takes them too)


class CheckpointError(Amodal3dError):
    """A checkpoint that cannot be read or does not belong to this run."""


def capture_rng() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU, and every CUDA device when initialised)."""
    version, state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        "python": [version, list(state), gauss],
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized()
        else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, values, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in values), gauss))
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": np_state["bit_generator"],
                         "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
                         "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"])[: torch.cuda.device_count()])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (weights_only-compatible content) atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; CheckpointError when it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") \
            from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an amodal3d training checkpoint")
    return state
