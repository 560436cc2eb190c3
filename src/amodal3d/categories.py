"""The category set (taxonomy) of a dataset or a model, as data.

A :class:`Taxonomy` is an ordered list of (category id, name) pairs. Models see *labels*: contiguous
1-based indices into that list (0 is the background or :data:`amodal3d.structures.UNKNOWN_CATEGORY`);
datasets and outputs (COCO results, evaluation) use the category ids. :data:`DEFAULT` is the 13
ShapeNet categories of the data engine and the shipped model (ids 1..13, so there label = id).

A *category map* (JSON, ``{"dataset name": "model name", ...}``, a ``null`` value leaving that
category out) is how a dataset of one taxonomy meets weights or a training run of another
(:func:`relabel`): it is only ever applied when given, never guessed. The bottom layer: it imports
nothing of the package but :mod:`amodal3d.errors`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from amodal3d.errors import DataError

ID_LIMIT = 2**53  # as amodal3d.data.schema: ids are integers of magnitude below this
AGNOSTIC_NAME = "object"

if TYPE_CHECKING:
    import numpy as np


def _is_id(value: object) -> bool:
    return type(value) is int and -ID_LIMIT < value < ID_LIMIT


@dataclass(frozen=True)
class Taxonomy:
    """Ordered (category id, name) pairs; ids and names unique, names non-empty strings. Label k
    (1-based) is the k-th pair."""

    categories: tuple[tuple[int, str], ...]

    def __post_init__(self) -> None:
        pairs = tuple((c[0], c[1]) for c in self.categories)
        object.__setattr__(self, "categories", pairs)
        problem = _pairs_problem(pairs)
        if problem:
            raise ValueError(f"taxonomy: {problem}")

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_coco(categories: object, source: str | Path = "categories") -> Taxonomy:
        """A COCO ``categories`` list (``[{"id": int, "name": str, ...}, ...]``) in file order; a
        :class:`DataError` naming ``source`` and the entry for an entry that is not an object with an
        integer ``id`` and a non-empty string ``name``, for a duplicate id or name and for an empty list."""
        if not isinstance(categories, list):
            raise DataError(f"{source}: 'categories' must be a list of {{\"id\", \"name\"}} objects")
        if not categories:
            raise DataError(f"{source}: 'categories' is empty: no category to train or name")
        pairs = []
        for k, entry in enumerate(categories):
            if not isinstance(entry, dict):
                raise DataError(f"{source}: categories[{k}] is not an object")
            ident, name = entry.get("id"), entry.get("name")
            if not _is_id(ident):
                raise DataError(f"{source}: categories[{k}]: id {ident!r} is not an integer id")
            if not isinstance(name, str) or not name.strip():
                raise DataError(f"{source}: category {ident}: name {name!r} is not a non-empty string")
            pairs.append((ident, name))
        problem = _pairs_problem(tuple(pairs))
        if problem:
            raise DataError(f"{source}: {problem}")
        return Taxonomy(tuple(pairs))

    @staticmethod
    def from_json(data: object, source: str | Path = "categories") -> Taxonomy:
        """The inverse of :meth:`to_json` (the same checks as :meth:`from_coco`)."""
        return Taxonomy.from_coco(data, source)

    def to_json(self) -> list[dict]:
        """``[{"id": ..., "name": ...}, ...]`` in label order (what a weights file records)."""
        return [{"id": ident, "name": name} for ident, name in self.categories]

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.categories)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(ident for ident, _ in self.categories)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.categories)

    def label_of(self, category_id: int) -> int:
        """The 1-based label of a category id (KeyError for an id not in the taxonomy)."""
        return self._label_by_id[int(category_id)]

    def id_of(self, label: int) -> int:
        """The category id of a 1-based label (IndexError outside 1..N)."""
        label = int(label)
        if not 1 <= label <= len(self):
            raise IndexError(f"label {label} is outside 1..{len(self)}")
        return self.categories[label - 1][0]

    def name_of(self, label: int) -> str:
        """The name of a 1-based label; ``str(label)`` outside 1..N (e.g. 0, unknown)."""
        label = int(label)
        return self.categories[label - 1][1] if 1 <= label <= len(self) else str(label)

    def ids_of(self, labels: Sequence[int] | np.ndarray) -> np.ndarray:
        """Category ids (N,) int64 of labels (N,) in 1..N."""
        import numpy as np

        table = np.array([0, *self.ids], np.int64)
        labels = np.asarray(labels, np.int64)
        if labels.size and (labels.min() < 1 or labels.max() > len(self)):
            raise IndexError(f"labels must lie in 1..{len(self)}")
        return table[labels]

    def same_as(self, other: Taxonomy) -> bool:
        """The same (id, name) pairs, whatever their order."""
        return set(self.categories) == set(other.categories)

    def names_ids_as(self, categories: object) -> bool:
        """True when a COCO ``categories`` list (not empty) names each of its ids as this taxonomy does
        (a subset is enough): only then are a file's category ids this taxonomy's."""
        pairs = set(self.categories)
        return isinstance(categories, list) and bool(categories) and all(
            isinstance(c, dict) and _is_id(c.get("id")) and isinstance(c.get("name"), str)
            and (c["id"], c["name"]) in pairs for c in categories)

    def describe(self, limit: int = 8) -> str:
        """``3 categories: 7 cat, 42 dog, 1000 bird`` (the first ``limit``)."""
        shown = ", ".join(f"{i} {n}" for i, n in self.categories[:limit])
        more = f", ... ({len(self) - limit} more)" if len(self) > limit else ""
        return f"{len(self)} categor{'y' if len(self) == 1 else 'ies'}: {shown}{more}"

    @cached_property
    def _label_by_id(self) -> dict[int, int]:
        return {ident: k + 1 for k, (ident, _) in enumerate(self.categories)}


def _pairs_problem(pairs: tuple[tuple[int, str], ...]) -> str | None:
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for ident, name in pairs:
        if not _is_id(ident):
            return f"category id {ident!r} is not an integer id"
        if not isinstance(name, str) or not name.strip():
            return f"category {ident}: name {name!r} is not a non-empty string"
        if ident in seen_ids:
            return f"category id {ident} appears twice"
        if name in seen_names:
            return f"category name {name!r} appears twice"
        seen_ids.add(ident)
        seen_names.add(name)
    return None


SHAPENET = (
    # (name used in tables, ShapeNet synset, ShapeNet name): amodal3d.CATEGORIES
    ("airplane", "02691156", "airplane"),
    ("bench", "02828884", "bench"),
    ("dresser", "02933112", "cabinet"),
    ("car", "02958343", "car"),
    ("chair", "03001627", "chair"),
    ("display", "03211117", "display"),
    ("lamp", "03636649", "lamp"),
    ("speaker", "03691459", "loudspeaker"),
    ("rifle", "04090263", "rifle"),
    ("sofa", "04256520", "sofa"),
    ("table", "04379243", "table"),
    ("phone", "04401088", "telephone"),
    ("vessel", "04530566", "watercraft"),
)

DEFAULT = Taxonomy(tuple((k + 1, name) for k, (name, _, _) in enumerate(SHAPENET)))
"""The 13 ShapeNet categories, ids 1..13: the data engine's and the shipped model's taxonomy."""

CLASS_AGNOSTIC = Taxonomy(((1, AGNOSTIC_NAME),))


def class_agnostic() -> Taxonomy:
    """One category, id 1, ``object``: what ``--class-agnostic`` trains."""
    return CLASS_AGNOSTIC


# ---------------------------------------------------------------------------------------- category maps
def load_category_map(path: str | Path) -> dict[str, str | None]:
    """A category map file: a JSON object ``{"from name": "to name" or null}``. DataError naming the file
    for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: category map file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: category map is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a category map is a JSON object {{\"dataset name\": \"model name\" or null}}")
    for key, value in data.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise DataError(f"{path}: category map: {key!r} maps to {value!r}, not a category name or null")
    return data


@dataclass(frozen=True)
class Relabel:
    """How a dataset's category ids become a model's labels: ``taxonomy`` is the model's (labels 1..N),
    ``labels`` pairs each dataset category id with its label (0: the category is left out)."""

    taxonomy: Taxonomy
    labels: tuple[tuple[int, int], ...]

    def label_table(self) -> dict[int, int]:
        return dict(self.labels)

    def is_identity(self) -> bool:
        """Every category id is its own label (the 13 default categories read as themselves)."""
        return all(ident == label for ident, label in self.labels)

    def digest(self) -> str:
        """A short text naming this relabelling (cache keys)."""
        import hashlib

        text = json.dumps([self.taxonomy.to_json(), list(self.labels)], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def identity(taxonomy: Taxonomy) -> Relabel:
    """A dataset read in its own taxonomy: category id -> its label."""
    return Relabel(taxonomy, tuple((ident, k + 1) for k, ident in enumerate(taxonomy.ids)))


def _mapped_names(dataset: Taxonomy, mapping: Mapping[str, str | None], source: str | Path) -> list[str | None]:
    """Each dataset category's name after ``mapping`` (None: left out); DataError naming the map file and
    the name for a key that is no category of the dataset."""
    unknown = [key for key in mapping if key not in dataset.names]
    if unknown:
        raise DataError(f"{source}: category map names {unknown[0]!r}, which is not a category of the dataset "
                        f"({dataset.describe()})")
    return [mapping.get(name, name) for name in dataset.names]


def relabel(dataset: Taxonomy, *, model: Taxonomy | None = None, class_agnostic: bool = False,
            category_map: Mapping[str, str | None] | None = None, map_source: str | Path = "--category-map",
            dataset_source: str | Path = "the dataset", model_source: str | Path = "the weights") -> Relabel:
    """How ``dataset``'s ids become labels of the model's taxonomy:

    - ``class_agnostic``: every category (but those a map sends to null) -> label 1 of ``object``; the
      model, when given, must be class-agnostic too;
    - ``model`` given (weights to fine-tune or evaluate): the dataset's categories must be the model's
      (same ids and names), unless ``category_map`` renames each dataset name to a model name (or null);
      otherwise a DataError naming both taxonomies;
    - no model: the dataset's own categories, renamed by ``category_map`` when given (categories mapped
      onto one name merge: the merged category takes the smallest of their ids).

    Never a silent remap: an unknown name in the map, or a mapped name the model does not know, is a
    DataError naming the map file and the name."""
    mapping = dict(category_map) if category_map is not None else None
    names = _mapped_names(dataset, mapping, map_source) if mapping is not None else list(dataset.names)
    if class_agnostic:
        if model is not None and not model.same_as(CLASS_AGNOSTIC):
            raise DataError(f"--class-agnostic: {model_source} are not class-agnostic ({model.describe()})")
        return Relabel(CLASS_AGNOSTIC, tuple((i, 0 if n is None else 1) for i, n in zip(dataset.ids, names)))
    if model is not None:
        if mapping is None:
            if dataset.same_as(model):
                return Relabel(model, tuple((i, model.label_of(i)) for i in dataset.ids))
            raise DataError(f"{dataset_source} has other categories ({dataset.describe()}) than {model_source} "
                            f"({model.describe()}): pass --category-map FILE (JSON, dataset name -> model name) "
                            f"to map them, or train without these weights")
        known = {name: k + 1 for k, name in enumerate(model.names)}
        missing = [n for n in names if n is not None and n not in known]
        if missing:
            raise DataError(f"{map_source}: category {missing[0]!r} is not a category of {model_source} "
                            f"({model.describe()}); map it to one of them or to null (left out)")
        return Relabel(model, tuple((i, 0 if n is None else known[n]) for i, n in zip(dataset.ids, names)))
    if mapping is None:
        return identity(dataset)
    merged: dict[str, int] = {}
    for ident, name in zip(dataset.ids, names):
        if name is not None:
            merged[name] = min(merged.get(name, ident), ident)
    if not merged:
        raise DataError(f"{map_source}: the category map leaves no category of {dataset_source}")
    target = Taxonomy(tuple((ident, name) for name, ident in merged.items()))
    order = {name: k + 1 for k, name in enumerate(merged)}  # target's labels: merged's order
    labels = tuple((i, 0 if n is None else order[n]) for i, n in zip(dataset.ids, names))
    return Relabel(target, labels)


__all__ = ["AGNOSTIC_NAME", "CLASS_AGNOSTIC", "DEFAULT", "Relabel", "SHAPENET", "Taxonomy", "class_agnostic",
           "identity", "load_category_map", "relabel"]
