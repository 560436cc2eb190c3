"""Tests of the procedural ShapeNet-like mesh generators (amodal3d.data.shapes.procedural)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from amodal3d import CATEGORY_NAMES
from amodal3d.data.shapes.primitives import (
    assemble,
    box,
    cylinder,
    lathe,
    normalize_mesh,
    profile_zy,
    rounded_box,
    triangulate_polygon,
)
from amodal3d.data.shapes.procedural import ASYMMETRIC_VARIANTS, VARIANTS, generate_mesh

ALL_VARIANTS = [(c, v) for c in CATEGORY_NAMES for v in VARIANTS[c]]
MAX_FACES = 8000
SEEDS = (0, 1, 2)


def _mesh(category: str, variant: str | None, seed: int) -> trimesh.Trimesh:
    return generate_mesh(category, np.random.default_rng(seed), variant=variant)


def _mirror_chamfer(vertices: np.ndarray) -> float:
    """Symmetric Chamfer distance (mean of both directions) between a point cloud and its x-mirror."""
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    d1, _ = cKDTree(mirrored).query(vertices)
    d2, _ = cKDTree(vertices).query(mirrored)
    return float(d1.mean() + d2.mean()) / 2


def test_variants_cover_every_category():
    assert set(VARIANTS) == set(CATEGORY_NAMES)
    for category, variants in VARIANTS.items():
        assert len(variants) >= 3, category
        assert len(set(variants)) == len(variants)


@pytest.mark.parametrize(("category", "variant"), ALL_VARIANTS)
def test_every_variant_is_a_clean_normalized_mesh(category, variant):
    for seed in SEEDS:
        mesh = _mesh(category, variant, seed)
        verts, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        assert np.isfinite(verts).all()
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
        assert abs(np.linalg.norm(hi - lo) - 1.0) < 1e-6
        assert 0 < len(faces) <= MAX_FACES
        assert faces.min() >= 0 and faces.max() < len(verts)
        assert (mesh.area_faces > 0).all()
        part_ids = mesh.metadata["part_ids"]
        assert part_ids.dtype == np.int32 and part_ids.shape == (len(faces),)
        assert len(np.unique(part_ids)) >= 3              # assembled from several parts
        assert mesh.metadata["variant"] == variant


@pytest.mark.parametrize(("category", "variant"), ALL_VARIANTS)
def test_symmetric_about_x(category, variant):
    if (category, variant) in ASYMMETRIC_VARIANTS:
        pytest.skip("asymmetric by design")
    for seed in SEEDS:
        assert _mirror_chamfer(np.asarray(_mesh(category, variant, seed).vertices)) < 0.02


def test_sectional_sofa_is_asymmetric():
    assert ("sofa", "sectional") in ASYMMETRIC_VARIANTS
    assert _mirror_chamfer(np.asarray(_mesh("sofa", "sectional", 0).vertices)) > 0.02


@pytest.mark.parametrize("category", CATEGORY_NAMES)
def test_deterministic_and_varied(category):
    a = _mesh(category, None, 7)
    b = _mesh(category, None, 7)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.metadata["part_ids"], b.metadata["part_ids"])
    c = _mesh(category, None, 8)
    same = a.vertices.shape == c.vertices.shape and np.allclose(a.vertices, c.vertices)
    assert not same


@pytest.mark.parametrize("category", CATEGORY_NAMES)
def test_variant_drawn_from_rng(category):
    seen = {_mesh(category, None, seed).metadata["variant"] for seed in range(40)}
    assert seen == set(VARIANTS[category])


def test_rifle_is_long_and_thin():
    for variant in VARIANTS["rifle"]:
        for seed in range(5):
            extent = np.ptp(np.asarray(_mesh("rifle", variant, seed).vertices), axis=0)
            assert extent[2] >= 3 * extent[1], (variant, seed)
            assert extent[2] >= 3 * extent[0], (variant, seed)


def test_front_faces_plus_z():
    """Spot checks of the frame: muzzle, nose and bow at +z; a chair's back at -z; upright +y."""
    rifle = np.asarray(_mesh("rifle", "assault", 0).vertices)
    # the thin barrel is at the front: few vertices near z max, the bulky stock at z min
    z = rifle[:, 2]
    front = rifle[z > z.max() - 0.15]
    back = rifle[z < z.min() + 0.15]
    assert np.ptp(front[:, 1]) < np.ptp(back[:, 1])
    chair = np.asarray(_mesh("chair", "four_leg", 0).vertices)
    top = chair[chair[:, 1] > chair[:, 1].max() - 0.05]
    assert top[:, 2].mean() < 0                       # the top of the back is behind the seat
    lamp = np.asarray(_mesh("lamp", "floor", 0).vertices)
    assert np.ptp(lamp[:, 1]) > np.ptp(lamp[:, 0])     # tall
    car = np.asarray(_mesh("car", "sedan", 0).vertices)
    assert np.ptp(car[:, 2]) > 2 * np.ptp(car[:, 1])   # long along z


def test_unknown_category_and_variant():
    with pytest.raises(ValueError, match="airplane"):
        generate_mesh("spaceship", np.random.default_rng(0))
    with pytest.raises(ValueError, match="swivel"):
        generate_mesh("chair", np.random.default_rng(0), variant="throne")


def test_generation_is_fast():
    """Generation is cheap: measured in this thread's CPU time (time.thread_time: the time the generator
    itself computes, whatever else the machine runs; about 5 ms a mesh, the bound is 50 ms), and in the
    size of what it makes (a deterministic measure of the work each mesh costs later: ray casting,
    rendering), well below MAX_FACES on average."""
    rng = np.random.default_rng(123)
    for category in CATEGORY_NAMES:  # warm-up (caches, imports)
        generate_mesh(category, rng)
    start = time.thread_time()
    faces = []
    for _ in range(5):
        for category in CATEGORY_NAMES:
            faces.append(len(generate_mesh(category, rng).faces))
    assert (time.thread_time() - start) / len(faces) < 0.05
    assert max(faces) <= MAX_FACES and np.mean(faces) < 1500


# ----------------------------------------------------------------------------------------------
# primitives
# ----------------------------------------------------------------------------------------------

def test_closed_primitives_are_outward():
    for part in (box((1, 2, 3)), cylinder((0, 0, 0), (0.3, 1, 0.2), 0.1, 0.05),
                 rounded_box((1, 0.3, 0.6), 0.1),
                 lathe([(0, 0), (0.3, 0), (0.1, 0.5), (0, 0.6)]),
                 profile_zy([(0, 0), (1, 0), (1, 0.2), (0.3, 0.25), (0.2, 0.6), (0, 0.6)], 0.2)):
        mesh = assemble([part])
        merged = trimesh.Trimesh(mesh.vertices, mesh.faces)  # merges duplicate cap vertices
        assert merged.is_winding_consistent
        assert mesh.volume > 0


def test_box_volume_and_normalize():
    mesh = assemble([box((1.0, 2.0, 3.0), (5.0, 0.0, 0.0))])
    assert mesh.volume == pytest.approx(6.0)
    unit = normalize_mesh(mesh)
    np.testing.assert_allclose(unit.bounds.mean(axis=0), 0.0, atol=1e-12)
    assert np.linalg.norm(np.ptp(unit.vertices, axis=0)) == pytest.approx(1.0)
    np.testing.assert_array_equal(unit.metadata["part_ids"], mesh.metadata["part_ids"])


def test_triangulate_concave_polygon():
    poly = np.array([(0, 0), (3, 0), (3, 1), (1, 1), (1, 3), (0, 3)], dtype=float)  # an L
    tris = triangulate_polygon(poly)
    assert tris.shape == (4, 3)
    ab, ac = poly[tris[:, 1]] - poly[tris[:, 0]], poly[tris[:, 2]] - poly[tris[:, 0]]
    area = np.abs(ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]).sum() / 2
    assert area == pytest.approx(5.0)


def test_assemble_drops_degenerate_faces():
    verts = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0.0]])
    faces = np.array([[0, 1, 2], [0, 1, 3]])
    mesh = assemble([(verts, faces), box((1, 1, 1))])
    assert len(mesh.faces) == 13
    assert (mesh.area_faces > 0).all()
    np.testing.assert_array_equal(np.bincount(mesh.metadata["part_ids"]), [1, 12])
