"""The experiment configs that rebuild the shipped ``cpu-small`` model, installed with the package.

Each YAML file holds a ``model`` and a ``train`` section (the stage's experiment dataclass). A fine-tune
round also names the weights it starts from in a top-level ``init`` field: another config (a path
relative to this one's folder; that round is trained first and its weights start this one) or a weights
file (``.safetensors``). ``amodal3d train all`` follows these chains (:data:`SHIPPED`: the last round of each):

- step 1, the detector (ORCNN heads; ``detector.*``): ``orcnn_cpu_small`` -> ``orcnn_cpu_small_finetune``
- step 1b, the crop head (``crop_head.*``): ``crop_head_cpu`` -> ``crop_head_cpu_finetune``
- steps 2-4, the shape prior (``shape.*``): ``shape_cpu`` -> ``shape_cpu_sharpen``
- step 5, the refinement and its no-prior twin (``refine.*``, ``refine_no_prior.*``): ``refine_cpu`` ->
  ``refine_cpu_finetune`` -> ``refine_cpu_fit`` (on fitted priors)
- the Mask R-CNN amodal baseline (``maskrcnn_amodal.*``, not trained by ``train all``):
  ``maskrcnn_amodal_cpu_small`` -> ``maskrcnn_amodal_cpu_small_finetune``

The last round of each chain has the ``model`` section whose config hash the shipped weights' JSON
records (``tests/test_configs.py``); the recipe is in the model card
(``amodal3d/weights/cpu-small/MODEL_CARD.md``). ``detector_cpu_small.yaml`` (visible heads) and
``detector_r50_fpn.yaml`` (the paper's ResNet-50 FPN, for GPUs) are not part of the shipped model.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from amodal3d.engine.config import ConfigError, read_yaml

__all__ = ["CONFIG_DIR", "SHIPPED", "config_names", "config_path", "read_round", "rounds"]

CONFIG_DIR = Path(str(resources.files(__name__)))
"""The folder of the installed configs (inside the package, so it exists outside a checkout too)."""

SHIPPED = {"detector": "orcnn_cpu_small_finetune.yaml", "crop_head": "crop_head_cpu_finetune.yaml",
           "shape": "shape_cpu_sharpen.yaml", "refine": "refine_cpu_fit.yaml",
           "maskrcnn_amodal": "maskrcnn_amodal_cpu_small_finetune.yaml"}
"""Stage -> the last config of the chain that trained the shipped weights (``train all``'s defaults)."""

INIT_KEY = "init"
"""Top-level key of a fine-tune round: the config (or weights file) it starts from."""


def config_names() -> list[str]:
    """The names (file stems) of the installed configs, sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(spec: str | Path) -> Path:
    """``spec`` as a config file: an existing path as given, else the name of an installed config (with or
    without ``.yaml``, e.g. ``orcnn_cpu_small``) as its path in :data:`CONFIG_DIR`. Raises ConfigError for
    neither."""
    path = Path(spec)
    if path.exists():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml"
    if path.parent == Path(".") and (CONFIG_DIR / name).is_file():
        return CONFIG_DIR / name
    raise ConfigError(f"{spec}: config file not found (nor an installed config: {', '.join(config_names())})")


def read_round(path: str | Path) -> tuple[dict, Path | None]:
    """(the config's sections without ``init``, the path ``init`` names or None). A relative ``init`` is
    read from the config's folder; a config name alone (``orcnn_cpu_small``) is also found there."""
    path = Path(path)
    data = read_yaml(path)
    init = data.pop(INIT_KEY, None)
    if init is None:
        return data, None
    if not isinstance(init, str) or not init:
        raise ConfigError(f"{path}: {INIT_KEY}: expected a config or weights path, got {init!r}")
    target = Path(init) if Path(init).is_absolute() else path.parent / init
    if target.suffix not in (".yaml", ".yml", ".safetensors"):
        target = target.with_name(target.name + ".yaml")
    if not target.is_file():
        raise ConfigError(f"{path}: {INIT_KEY}: {target}: file not found")
    return data, target


def rounds(spec: str | Path) -> tuple[list[tuple[Path, dict]], Path | None]:
    """The fine-tune chain that ends at config ``spec``, first round first: ([(config path, its sections
    without ``init``), ...], the weights file the first round starts from or None for from scratch)."""
    chain: list[tuple[Path, dict]] = []
    path: Path | None = config_path(spec)
    while path is not None and path.suffix != ".safetensors":
        if any(path.resolve() == seen.resolve() for seen, _ in chain):
            raise ConfigError(f"{path}: {INIT_KEY}: the chain of configs loops back to this one")
        data, init = read_round(path)
        chain.append((path, data))
        path = init
    return chain[::-1], path
