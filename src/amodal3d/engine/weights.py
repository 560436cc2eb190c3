"""Exported weights: ``NAME.safetensors`` (tensors) + ``NAME.json`` (what is needed to rebuild the model).

Loading never unpickles: a file that is not safetensors (a ``torch.save`` zip, a raw pickle, anything
else) is refused with a :class:`~amodal3d.errors.WeightsError`, and so are tensors holding NaN or inf
(what a diverged training run leaves): neither written by :func:`save_weights` nor read back. The JSON holds
``{"format": "amodal3d-weights", "version": 1, "kind": KIND, "config": {...}, "config_sha256": ...,
"categories": [{"id", "name"}, ...]}`` and the safetensors metadata repeats ``kind`` and
``config_sha256``, so a JSON that belongs to other weights is detected. ``categories`` is the model's
taxonomy (label k = the k-th entry, :class:`amodal3d.categories.Taxonomy`); weights without it (the
shipped ones, older runs) are of the 13 default categories (:func:`load_taxonomy`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from amodal3d.categories import DEFAULT, Relabel, Taxonomy, identity, relabel
from amodal3d.engine.config import from_dict
from amodal3d.errors import Amodal3dError, WeightsError
from amodal3d.io import atomic_write_bytes, atomic_write_json
from amodal3d.paths import check_regular_file

FORMAT = "amodal3d-weights"
VERSION = 1


def config_digest(config: dict) -> str:
    """SHA-256 of the canonical JSON of a config dict."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def weight_paths(path: str | Path) -> tuple[Path, Path]:
    """(``X.safetensors``, ``X.json``) for ``X``, ``X.safetensors``, ``X.json``, or a folder holding
    ``model.safetensors``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_weights(path: str | Path, state: dict[str, torch.Tensor], kind: str, config: dict,
                 dtype: torch.dtype | None = None, extra: dict | None = None,
                 taxonomy: Taxonomy | None = None) -> tuple[Path, Path]:
    """Write ``state`` (name -> tensor) as safetensors and ``config`` as JSON, both atomically.

    ``dtype`` (e.g. ``torch.float16``) casts floating tensors; integer buffers keep their dtype.
    ``extra`` (JSON-ready, e.g. training notes) is stored in the JSON outside the checked config, and so
    is ``taxonomy`` (the model's categories, ``categories``)."""
    tensor_path, json_path = weight_paths(path)
    digest = config_digest(config)
    tensors = {}
    for name, value in state.items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[name] = value.contiguous().clone()
    bad = first_non_finite(tensors.items())
    if bad is not None:
        cast = f" (after the cast to {dtype}: a value is out of its range)" if dtype is not None and \
            bool(torch.isfinite(state[bad].detach()).all()) else ""
        raise WeightsError(f"{tensor_path}: not written: tensor {bad!r} holds NaN/inf values{cast}")
    data = st_save(tensors, metadata={"format": FORMAT, "kind": kind, "config_sha256": digest})
    atomic_write_bytes(tensor_path, data)
    info = {"format": FORMAT, "version": VERSION, "kind": kind, "config": config, "config_sha256": digest}
    if taxonomy is not None:
        info["categories"] = taxonomy.to_json()
    if extra:
        info["extra"] = extra
    atomic_write_json(json_path, info, indent=2)
    return tensor_path, json_path


def record_taxonomy(path: str | Path, taxonomy: Taxonomy) -> Path:
    """Record ``taxonomy`` in the JSON of saved weights (``categories``; outside the checked config, so
    the tensors and the config digest stay as they are). Returns the JSON path."""
    _, json_path = _tensor_and_json(path)
    info = _read_info(json_path)
    info["categories"] = taxonomy.to_json()
    atomic_write_json(json_path, info, indent=2)
    return json_path


def load_taxonomy(path: str | Path) -> Taxonomy:
    """The taxonomy of saved weights: their JSON's ``categories`` (or, in detector files written before it,
    ``extra.categories``); weights recording none are of the 13 default categories
    (:data:`amodal3d.categories.DEFAULT`). WeightsError for a malformed list."""
    _, json_path = _tensor_and_json(path)
    info = _read_info(json_path)
    categories = info.get("categories")
    if categories is None and isinstance(info.get("extra"), dict) and info["extra"].get("categories"):
        categories = info["extra"]["categories"]
    if categories is None:
        return DEFAULT
    try:
        return Taxonomy.from_json(categories, f"{json_path}: categories")
    except Amodal3dError as error:
        raise WeightsError(str(error)) from None


def training_relabel(dataset, init: str | Path | None = None, given: Relabel | None = None) -> Relabel:
    """The labels a training run on ``dataset`` (an :class:`~amodal3d.data.dataset.AmodalDataset`) uses:
    ``given`` (e.g. ``train all``'s ``--class-agnostic`` / ``--category-map``), else the dataset's own
    categories. Weights to start from (``init``) must be of that taxonomy: a DataError naming both
    otherwise (never a silent remap)."""
    if given is None:
        if init is None:
            return identity(dataset.source_taxonomy)
        return relabel(dataset.source_taxonomy, model=load_taxonomy(init), dataset_source=dataset.annotation_file,
                       model_source=f"the --init weights {init}")
    if init is not None and not load_taxonomy(init).same_as(given.taxonomy):
        raise WeightsError(f"{init}: its categories ({load_taxonomy(init).describe()}) are not the training "
                           f"run's ({given.taxonomy.describe()}); give weights of the same categories")
    return given


def _read_info(json_path: Path, beside: str | None = None) -> dict:
    """The JSON beside weights (the tensor file ``beside``), checked to be an amodal3d weights config."""
    if not json_path.exists():
        raise WeightsError(f"{json_path}: config file not found" + (f" (needed beside {beside})" if beside else ""))
    _regular_file(json_path, "config file")
    try:
        info = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"{json_path}: malformed JSON ({error})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("config"), dict):
        raise WeightsError(f"{json_path}: not an amodal3d weights config")
    return info


def _describe_non_safetensors(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save checkpoint?)"
    if head[:1] == b"\x80":
        return "a Python pickle"
    return "not a safetensors file"


def first_non_finite(named_tensors) -> str | None:
    """The name of the first floating tensor of ``(name, tensor)`` pairs holding NaN or inf, else None."""
    for name, tensor in named_tensors:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _regular_file(path: Path, what: str) -> Path:
    """``path`` is a regular file (a FIFO or device would block the reader): WeightsError otherwise."""
    if not path.exists():
        raise WeightsError(f"{path}: {what} not found")
    try:
        return check_regular_file(path)
    except Amodal3dError as error:
        raise WeightsError(str(error)) from None


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; WeightsError for anything else (never unpickles) and
    for a tensor holding NaN or inf (named: the first one in the file)."""
    path = _regular_file(Path(path), "weights file")
    data = path.read_bytes()
    valid = len(data) >= 10
    if valid:
        (header_len,) = struct.unpack("<Q", data[:8])
        valid = 0 < header_len <= len(data) - 8 and data[8:9] == b"{"
    if not valid:
        raise WeightsError(f"{path}: {_describe_non_safetensors(data[:8])}; amodal3d loads only safetensors "
                           "weights (it never unpickles)")
    try:
        header = json.loads(data[8:8 + header_len])
        tensors = st_load(data)
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as error:
        raise WeightsError(f"{path}: corrupt safetensors file ({error})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: corrupt safetensors file (the header is not a JSON object)")
    order = sorted((k for k in header if k != "__metadata__" and k in tensors),
                   key=lambda k: tuple((header[k] or {}).get("data_offsets") or (0, 0)))
    bad = first_non_finite((k, tensors[k]) for k in [*order, *(k for k in tensors if k not in order)])
    if bad is not None:
        values = tensors[bad].float()
        count = int((~torch.isfinite(values)).sum())
        raise WeightsError(f"{path}: tensor {bad!r} holds NaN/inf values ({count} of {values.numel()}): weights "
                           "of a diverged training run are refused")
    return tensors, dict(header.get("__metadata__") or {})


def _tensor_and_json(path: str | Path) -> tuple[Path, Path]:
    """(safetensors, JSON config) that :func:`load_weights` reads for ``path``."""
    tensor_path, json_path = weight_paths(path)
    if Path(path).is_file() and Path(path).suffix not in (".safetensors", ".json"):
        tensor_path = Path(path)
        json_path = tensor_path.with_suffix(".json")
    return tensor_path, json_path


def load_weights(path: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read exported weights -> (state dict, config dict). Checks the format, the kind and that the
    JSON config belongs to these tensors."""
    tensor_path, json_path = _tensor_and_json(path)
    tensors, meta = read_safetensors(tensor_path)
    info = _read_info(json_path, beside=tensor_path.name)
    if type(info.get("version")) is not int or info["version"] != VERSION:
        raise WeightsError(f"{json_path}: version {info.get('version')!r} is not supported (this amodal3d reads "
                           f"version {VERSION})")
    if info.get("kind") != kind or meta.get("kind", kind) != kind:
        found = info.get("kind") or meta.get("kind")
        raise WeightsError(f"{tensor_path}: holds {found!r} weights, expected {kind!r}")
    digest = config_digest(info["config"])
    if meta.get("config_sha256") not in (None, digest) or info.get("config_sha256", digest) != digest:
        raise WeightsError(f"{json_path}: config does not match {tensor_path.name} (config digest differs)")
    return tensors, info["config"]


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``module.load_state_dict(state)`` that names every mismatch in a WeightsError (keys, shapes)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                parts.append(f"{label}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}")
        raise WeightsError(f"{source}: weights do not match the model built from the config "
                           f"({'; '.join(parts)})")
    with torch.no_grad():
        for key, value in own.items():
            value.copy_(state[key].to(value.dtype))


def init_from(module: torch.nn.Module, path: str | Path, kind: str) -> None:
    """Start ``module`` from trained weights of ``kind`` (fine-tuning): every tensor must match."""
    state, _ = load_weights(path, kind)
    load_state_strict(module, state, path)


def load_model(path: str | Path, kind: str, build, config_class: type, device: str | torch.device = "cpu"):
    """Rebuild a trained model ``build(config)`` from ``path`` (safetensors of ``kind`` + its JSON config,
    parsed strictly as ``config_class``; never unpickles), on ``device`` in eval mode."""
    state, config = load_weights(path, kind)
    model = build(from_dict(config_class, config, source=str(_tensor_and_json(path)[1])))
    load_state_strict(model, state, path)
    return model.to(device).eval()
