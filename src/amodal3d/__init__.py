"""amodal3d: amodal instance segmentation guided by a 3D shape prior."""

__version__ = "0.1.0"

CATEGORIES = (
    # (name used in tables, ShapeNet synset, ShapeNet name)
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
CATEGORY_NAMES = tuple(name for name, _, _ in CATEGORIES)
SYNSET_TO_NAME = {synset: name for name, synset, _ in CATEGORIES}
# COCO category ids are 1-based indices into CATEGORIES.
CATEGORY_ID = {name: i + 1 for i, name in enumerate(CATEGORY_NAMES)}
