"""The generic training engine, shared by every stage (detector, shape model, refinement).

- :mod:`~amodal3d.engine.config`: YAML <-> typed frozen dataclasses, unknown keys rejected.
- :mod:`~amodal3d.engine.trainer`: :class:`TrainConfig`, the loop (AdamW/SGD, warm-up + cosine/step,
  clipping, DDP, exact resume, ``log.jsonl``, progress bar).
- :mod:`~amodal3d.engine.distributed`: devices and torchrun process groups (gloo on CPU, NCCL on CUDA).
- :mod:`~amodal3d.engine.checkpoint`: resumable checkpoints (``torch.load(weights_only=True)``), RNG states.
- :mod:`~amodal3d.engine.weights`: exported weights, safetensors + JSON config; never unpickles.
- :mod:`~amodal3d.engine.augment`: seeded photometric augmentation and consistent horizontal flips.

Modules are imported on demand (``from amodal3d.engine.trainer import Trainer``) so that importing this
package stays light.
"""
