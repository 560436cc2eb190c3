"""Paired comparison of two evaluation results with bootstrap confidence intervals (``amodal3d compare``).

Two results of :func:`amodal3d.evaluation.harness.evaluate` on the same ground truth (same data, split
and images) are compared instance by instance: the difference of their mIoU and occluded mIoU, and an
interval from resampling images (:func:`amodal3d.evaluation.metrics.bootstrap_difference`). A
difference whose interval excludes 0 is one that the choice of images does not explain; see
``docs/metrics.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from amodal3d.errors import Amodal3dError
from amodal3d.evaluation import metrics
from amodal3d.paths import check_regular_file, resolved

# figure -> the instances it averages over (all, or the occluded ones: occlude_rate >= 0.05)
FIGURES = {"miou": ("amodal_iou", False), "occluded_miou": ("occluded_iou", True)}
INSTANCE_KEYS = ("image_id", "category_id", "occlude_rate", "amodal_iou", "occluded_iou")


def load_result(path: str | Path) -> dict:
    """An ``amodal3d evaluate --json`` file -> its dict; a clear error naming the file otherwise."""
    path = Path(path)
    if path.exists():
        check_regular_file(path)  # a FIFO would block the read below forever
    try:
        result = json.loads(path.read_text())
    except OSError as error:
        raise Amodal3dError(f"{path}: cannot read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Amodal3dError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(result, dict) or "miou" not in result:
        raise Amodal3dError(f"{path}: not an evaluation result (no 'miou'; write one with amodal3d evaluate --json)")
    return result


def _instances(result: dict, name: str) -> dict[str, np.ndarray]:
    instances = result.get("instances")
    if not isinstance(instances, dict) or any(k not in instances for k in INSTANCE_KEYS):
        raise Amodal3dError(f"{name}: no per-instance scores ('instances'); evaluate it again with this "
                            f"version of amodal3d evaluate")
    columns = {k: np.asarray(instances[k]) for k in INSTANCE_KEYS}
    if len({len(v) for v in columns.values()}) != 1:
        raise Amodal3dError(f"{name}: its per-instance lists ('instances') differ in length")
    return columns


def _same_folder(a: object, b: object) -> bool:
    """The same dataset folder, though one may be given relative and the other absolute (relative
    paths are taken from the current folder)."""
    return a == b or (isinstance(a, str) and isinstance(b, str) and resolved(a) == resolved(b))


def compare_results(a: dict, b: dict, names: tuple[str, str] = ("A", "B"), resamples: int = 2000,
                    level: float = 0.95, seed: int = 0) -> dict:
    """``a`` minus ``b`` for each figure of :data:`FIGURES`, with its bootstrap interval over images.

    Both must score the same ground-truth instances (same data, split, image ids and categories, in
    order), else :class:`Amodal3dError` naming ``names`` (so does a bad ``resamples`` or ``level``).
    Returns a JSON-ready dict: ``a``, ``b`` (method, protocol and the figures as evaluated), ``split``,
    ``num_images``, ``num_instances`` and per figure the fields of
    :func:`~amodal3d.evaluation.metrics.bootstrap_difference` (fractions, not percent)."""
    cols_a, cols_b = _instances(a, names[0]), _instances(b, names[1])
    for key in ("data", "split", "num_images"):
        if key == "data" and _same_folder(a.get(key), b.get(key)):
            continue
        if a.get(key) != b.get(key):
            raise Amodal3dError(f"{names[0]} and {names[1]} were scored on different ground truth: "
                                f"{key} {a.get(key)!r} against {b.get(key)!r}")
    if not all(np.array_equal(cols_a[k], cols_b[k]) for k in ("image_id", "category_id")):
        raise Amodal3dError(f"{names[0]} and {names[1]} were scored on different ground-truth instances "
                            f"(their image ids or categories differ)")
    occluded = cols_a["occlude_rate"] >= metrics.OCCLUDED_MIN_RATE
    figures = {}
    try:  # the lists are checked above, so a ValueError here is a bad resamples or level
        for figure, (column, occluded_only) in FIGURES.items():
            figures[figure] = metrics.bootstrap_difference(
                cols_a[column], cols_b[column], cols_a["category_id"], cols_a["image_id"],
                select=occluded if occluded_only else None, resamples=resamples, level=level, seed=seed)
    except ValueError as error:
        raise Amodal3dError(str(error).removeprefix("bootstrap_difference: ")) from None
    return {"a": {key: a.get(key) for key in ("method", "protocol", *FIGURES)},
            "b": {key: b.get(key) for key in ("method", "protocol", *FIGURES)},
            "split": a.get("split"), "num_images": a.get("num_images"),
            "num_instances": int(len(cols_a["image_id"])), **figures}


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:+.1f}"


def format_comparison(comparison: dict) -> str:
    """The comparison as text: one line per figure, in percentage points."""
    a, b = comparison["a"], comparison["b"]
    first = comparison[next(iter(FIGURES))]
    lines = [f"{a['method']} ({a['protocol']}) − {b['method']} ({b['protocol']}), {comparison['split']}: "
             f"{comparison['num_images']} images, {comparison['num_instances']} instances; "
             f"{100 * first['level']:.0f} % interval over {first['resamples']} image resamples"]
    for figure in FIGURES:
        d = comparison[figure]
        share = "–" if d["share_not_above_zero"] is None else f"{100 * d['share_not_above_zero']:.1f} %"
        lines.append(f"  {figure:14s} {_signed(d['difference']):>6s}  [{_signed(d['low'])}, {_signed(d['high'])}]"
                     f"   resamples with difference <= 0: {share}")
    return "\n".join(lines)
