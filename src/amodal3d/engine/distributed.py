"""Devices and (optional) multi-process training.

One process: ``python -m amodal3d train ...``. Several processes (GPUs or machines): ``torchrun``, which
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the backend is
NCCL on CUDA and gloo on CPU. A process that torchrun started joins the process group and trains under
DDP even when it is the only one (``--nproc_per_node 1``), so one GPU runs the same code path as many.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from amodal3d.errors import Amodal3dError


class DeviceError(Amodal3dError):
    """A device that was asked for but is not available."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process runs: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # "nccl" or "gloo" once a process group is joined (torchrun), else None

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(request: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> a device; a clear
    DeviceError when CUDA is asked for but unavailable. ``"cuda"`` picks GPU ``local_rank``."""
    request = (request or "auto").lower()
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "cpu"
    if request == "cpu":
        return torch.device("cpu")
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {request}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use --device cpu or --device auto")
        suffix = request.split(":", 1)[1] if ":" in request else str(local_rank)
        if request != "cuda" and not (request.startswith("cuda:") and suffix.isdigit()):
            raise DeviceError(f"--device {request}: expected auto, cpu, cuda or cuda:N")
        index = int(suffix)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {request}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    raise DeviceError(f"--device {request}: expected auto, cpu, cuda or cuda:N")


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (torch.distributed.run) started, whatever its world size."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the torchrun environment variables (0, 1, 0 without)."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as error:
        raise Amodal3dError(f"malformed RANK/WORLD_SIZE/LOCAL_RANK environment variable ({error})") from None


def init_distributed(device: str = "auto") -> DistInfo:
    """Set up this process: resolve the device and, under torchrun (or any ``WORLD_SIZE`` > 1), join
    the process group (NCCL for CUDA, gloo for CPU). Idempotent."""
    rank, world, local_rank = env_world()
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not (world > 1 or launched_by_torchrun()):
        return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=resolved)
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": resolved} if resolved.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=resolved,
                    backend=str(dist.get_backend()))


def cleanup_distributed() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (a list of length world_size); ``[obj]`` without a process group."""
    if not info.distributed or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over all ranks (identity without a process group)."""
    if not info.distributed or not dist.is_initialized():
        return values
    values = values.detach().clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size


def machine_description(**more: Any) -> dict:
    """What a benchmark ran on, for its JSON record: CPU count, torch threads, platform, torch version
    (and ``more``)."""
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "torch": torch.__version__, **more}
