"""Where the data engine's meshes come from: procedural generators, a ShapeNetCore root, or a folder
of mesh files per category. Every source hands out meshes in the object frame of
:mod:`amodal3d.geometry` (+Y up, front to +Z), normalised to a centred unit bounding-box diagonal, with
``metadata["part_ids"]`` (F,) for per-part colours, and splits that are disjoint by mesh. ShapeNetCore
meshes are turned into that frame from their own (:data:`SHAPENET_FRONT_YAW_DEG`); the meshes of
other folders are taken to be in it already."""

from __future__ import annotations

import hashlib
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from amodal3d import CATEGORY_NAMES, SYNSET_TO_NAME
from amodal3d.data.shapes.primitives import normalize_mesh
from amodal3d.errors import DataError, MeshError
from amodal3d.paths import check_regular_file, check_split_name

MESH_EXTENSIONS = (".obj", ".ply", ".off", ".glb", ".gltf", ".stl")
# Fractions of a real mesh collection assigned to each split (by a stable hash of the mesh id).
REAL_SPLIT_FRACTIONS = (("train", 0.80), ("val", 0.05), ("test", 0.15))
DEFAULT_PROCEDURAL_POOL = {"train": 150, "val": 15, "test": 40}
# ShapeNetCore's frames, from its READMEs: v2 (model_normalized.obj) +Y up, front -Z; v1 (model.obj) +Y up,
# front +X. The turn about +Y (degrees, right-handed) that brings each front to +Z:
SHAPENET_FRONT_YAW_DEG = {"model_normalized.obj": 180.0, "model.obj": -90.0}


def seed_from(*parts: object) -> int:
    """A stable 32-bit seed from strings and ints (independent of Python's hash randomisation)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def check_mesh(mesh: trimesh.Trimesh, name: str) -> None:
    """Raise :class:`MeshError` naming ``name`` when a mesh cannot be rendered."""
    if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise MeshError(f"{name}: the mesh is empty (no faces)")
    if not np.isfinite(mesh.vertices).all():
        raise MeshError(f"{name}: the mesh has NaN or infinite vertex coordinates")
    extent = mesh.bounds[1] - mesh.bounds[0]
    if float(np.linalg.norm(extent)) <= 0.0:
        raise MeshError(f"{name}: the mesh has zero size")
    if int(mesh.faces.max()) >= len(mesh.vertices) or int(mesh.faces.min()) < 0:
        raise MeshError(f"{name}: a face refers to a vertex that does not exist")


def load_mesh_file(path: str | Path) -> trimesh.Trimesh:
    """Read one mesh file (OBJ/PLY/OFF/GLB/GLTF/STL; a multi-part scene becomes one mesh with a part
    id per sub-mesh), check it and normalise it. Raises :class:`MeshError` naming the file."""
    path = Path(path)
    try:
        check_regular_file(path)  # a FIFO would block trimesh forever
    except DataError as error:
        raise MeshError(str(error)) from None
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as error:  # trimesh raises many types for corrupt files
        raise MeshError(f"{path}: cannot read the mesh ({type(error).__name__}: {error})") from None
    if isinstance(loaded, trimesh.Scene):
        geometries = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        if not geometries:
            raise MeshError(f"{path}: the file holds no triangle mesh")
        part_ids = np.concatenate([np.full(len(g.faces), i, np.int32) for i, g in enumerate(geometries)])
        mesh = trimesh.util.concatenate(geometries)
    elif isinstance(loaded, trimesh.Trimesh):
        mesh, part_ids = loaded, np.zeros(len(loaded.faces), np.int32)
    else:
        raise MeshError(f"{path}: the file holds no triangle mesh ({type(loaded).__name__})")
    mesh = trimesh.Trimesh(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces), process=False)
    check_mesh(mesh, str(path))
    mesh = normalize_mesh(mesh)
    mesh.metadata["part_ids"] = part_ids[: len(mesh.faces)]
    return mesh


def shapenet_front_yaw(mesh_id: str) -> float:
    """The turn about +Y (degrees) that brings the front of ``mesh_id`` (a path relative to a mesh root)
    to +Z: that of ShapeNetCore v1 or v2 for ``<synset>/.../model.obj`` or ``.../model_normalized.obj``
    under a ShapeNet synset folder, 0 for every other file."""
    parts = Path(mesh_id).parts
    if len(parts) < 2 or parts[0] not in SYNSET_TO_NAME:
        return 0.0
    return SHAPENET_FRONT_YAW_DEG.get(parts[-1], 0.0)


def turn_about_y(mesh: trimesh.Trimesh, yaw_deg: float) -> trimesh.Trimesh:
    """``mesh`` turned by ``yaw_deg`` about +Y in place (its metadata kept); returns it."""
    if yaw_deg:
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.deg2rad(yaw_deg), [0.0, 1.0, 0.0]))
    return mesh


def _split_of(mesh_id: str) -> str:
    """Deterministic split of a real mesh from a hash of its id (splits are disjoint by mesh)."""
    u = int(hashlib.sha1(mesh_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    cumulative = 0.0
    for split, fraction in REAL_SPLIT_FRACTIONS:
        cumulative += fraction
        if u < cumulative:
            return split
    return REAL_SPLIT_FRACTIONS[-1][0]


@dataclass
class MeshSource:
    """A collection of meshes per category and split. ``kind`` is ``procedural`` or ``files``.

    For ``files``, ``files[category]`` lists the mesh files; a mesh's split comes from a hash of its
    path relative to ``root`` (train 80%, val 5%, test 15%), or is ``only_split`` for every mesh (a
    collection kept for evaluation). For ``procedural``, each split owns its own pool of
    ``pool[split]`` seeds per category, so no mesh is shared between splits."""

    kind: str
    root: Path | None = None
    files: dict[str, list[Path]] = field(default_factory=dict)
    seed: int = 0
    only_split: str | None = None
    pool: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PROCEDURAL_POOL))
    _cache: dict[str, trimesh.Trimesh] = field(default_factory=dict, repr=False)
    _broken: set[str] = field(default_factory=set, repr=False)
    _split_ids: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)

    @property
    def categories(self) -> tuple[str, ...]:
        if self.kind == "procedural":
            return CATEGORY_NAMES
        return tuple(c for c in CATEGORY_NAMES if self.files.get(c))

    def mesh_ids(self, category: str, split: str) -> list[str]:
        """The meshes of ``category`` in ``split``, less those found broken so far."""
        if self.kind == "procedural":
            return [f"procedural/{category}/{split}/{i:04d}" for i in range(self._pool_size(split))]
        return [i for i in self._files_in(category, split) if i not in self._broken]

    def _pool_size(self, split: str) -> int:
        """Procedural meshes per category in ``split``."""
        return self.pool.get(split, DEFAULT_PROCEDURAL_POOL["test"])

    def _files_in(self, category: str, split: str) -> list[str]:
        """The mesh files of ``category`` in ``split``, broken ones included (cached: hashing every path
        of a ShapeNet root once)."""
        if (category, split) not in self._split_ids:
            ids = [str(p.relative_to(self.root)) for p in self.files.get(category, [])]
            self._split_ids[category, split] = [i for i in ids if (self.only_split or _split_of(i)) == split]
        return self._split_ids[category, split]

    def categories_in(self, split: str) -> tuple[str, ...]:
        """The categories with at least one mesh in ``split`` (not found broken so far), in
        :data:`CATEGORY_NAMES` order: a small collection may lack some categories in a split."""
        if self.kind == "procedural":
            return tuple(self.categories) if self._pool_size(split) else ()
        return tuple(c for c in self.categories if any(i not in self._broken for i in self._files_in(c, split)))

    def describe(self) -> str:
        """The source for messages: its folder, or ``the procedural meshes``."""
        return "the procedural meshes" if self.kind == "procedural" else str(self.root)

    def load(self, mesh_id: str) -> trimesh.Trimesh:
        """The normalised mesh of ``mesh_id`` (cached). Raises :class:`MeshError` for a broken file."""
        if mesh_id not in self._cache:
            if len(self._cache) > 2048:
                self._cache.clear()
            if self.kind == "procedural":
                from amodal3d.data.shapes.procedural import generate_mesh

                _, category, split, index = mesh_id.split("/")
                rng = np.random.default_rng(seed_from(self.seed, category, split, index))
                self._cache[mesh_id] = generate_mesh(category, rng)
            else:
                try:
                    mesh = load_mesh_file(self.root / mesh_id)
                    self._cache[mesh_id] = turn_about_y(mesh, shapenet_front_yaw(mesh_id))
                except MeshError as error:
                    self._broken.add(mesh_id)
                    warnings.warn(f"skipping a broken mesh: {error}", stacklevel=2)
                    raise
        return self._cache[mesh_id]


def _category_of_folder(name: str) -> str | None:
    name = name.strip().lower()
    if name in SYNSET_TO_NAME:
        return SYNSET_TO_NAME[name]
    aliases = {"cabinet": "dresser", "loudspeaker": "speaker", "telephone": "phone", "watercraft": "vessel",
               "monitor": "display", "boat": "vessel"}
    name = aliases.get(name, name)
    return name if name in CATEGORY_NAMES else None


def open_mesh_source(spec: str | Path, seed: int = 0, only_split: str | None = None) -> MeshSource:
    """``"procedural"`` or a folder: a ShapeNetCore v1/v2 root (synset folders holding
    ``<model>/models/model_normalized.obj`` or ``<model>/model.obj``) or a folder with one sub-folder
    of mesh files per category name. ``only_split`` puts every mesh of a folder in that split.
    Raises :class:`MeshError` when no usable mesh is found, :class:`Amodal3dError` for an ``only_split``
    that is not a plain name (:func:`amodal3d.paths.check_split_name`)."""
    if only_split is not None:
        check_split_name(only_split, "--shapes-split")
    if not str(spec).strip():
        raise MeshError("--shapes: empty (give 'procedural' or a ShapeNetCore / mesh folder)")
    if str(spec) == "procedural":
        if only_split:
            raise MeshError("--shapes-split applies to a mesh folder, not to procedural meshes "
                            "(their splits are disjoint pools already)")
        return MeshSource(kind="procedural", seed=seed)
    root = Path(spec)
    if not root.is_dir():
        raise MeshError(f"{root}: not a folder (give 'procedural' or a ShapeNetCore / mesh folder)")
    files: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        category = _category_of_folder(sub.name)
        if category is None:
            continue
        found = sorted(p for p in sub.rglob("*") if p.suffix.lower() in MESH_EXTENSIONS and p.is_file())
        # ShapeNetCore v2 ships model_normalized.obj; v1 model.obj; other files are textures' helpers.
        shapenet = [p for p in found if p.name in ("model_normalized.obj", "model.obj")]
        files.setdefault(category, []).extend(shapenet or found)
    if not any(files.values()):
        known = ", ".join(CATEGORY_NAMES)
        raise MeshError(f"{root}: no mesh files found: expected ShapeNet synset folders or one folder per "
                        f"category ({known}) holding {'/'.join(MESH_EXTENSIONS)} files")
    return MeshSource(kind="files", root=root, files=files, seed=seed, only_split=only_split)
