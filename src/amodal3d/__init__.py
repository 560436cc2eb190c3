"""amodal3d: amodal instance segmentation guided by a 3D shape prior."""

from amodal3d.categories import DEFAULT as DEFAULT_TAXONOMY
from amodal3d.categories import SHAPENET as CATEGORIES

__version__ = "0.1.0"

# The data engine's default categories and the shipped model's taxonomy: (name used in tables, ShapeNet
# synset, ShapeNet name). Other datasets and models carry their own (amodal3d.categories.Taxonomy).
CATEGORY_NAMES = tuple(name for name, _, _ in CATEGORIES)
SYNSET_TO_NAME = {synset: name for name, synset, _ in CATEGORIES}
# COCO category ids of the default taxonomy are 1-based indices into CATEGORIES.
CATEGORY_ID = {name: i + 1 for i, name in enumerate(CATEGORY_NAMES)}

__all__ = ["CATEGORIES", "CATEGORY_ID", "CATEGORY_NAMES", "DEFAULT_TAXONOMY", "SYNSET_TO_NAME", "__version__"]
