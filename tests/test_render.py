"""Tests of the differentiable silhouette renderer (amodal3d.render).

Fast code is compared with the dense reference (all pixels x all faces) and with a slow Python loop,
on tiny hand-checked cases; plus camera conventions and small fitting problems.
"""

from __future__ import annotations

import math

import pytest
import torch

from amodal3d import geometry
from amodal3d.render import (
    DEFAULT_SIGMA,
    ViewpointCamera,
    edges,
    icosphere,
    mirror_index,
    project_full,
    project_viewpoint,
    rasterize_hard,
    rasterize_soft,
    reflect,
    render_hard_silhouette,
    render_soft_silhouette,
    sigma_from_ndc,
    signed_dist2,
    soft_margin,
    soft_silhouette,
    soft_silhouette_dense,
    symmetrize,
    vertex_normals,
)
from amodal3d.render.blend import DEFAULT_CLAMP_EPS

F64 = torch.float64


def one_triangle(dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
    """Right triangle (1, 1), (7, 1), (1, 7) in pixels; uv (1, 3, 2), faces (1, 3)."""
    uv = torch.tensor([[[1.0, 1.0], [7.0, 1.0], [1.0, 7.0]]], dtype=dtype)
    return uv, torch.tensor([[0, 1, 2]])


def random_mesh(batch: int, size: int, seed: int, dtype: torch.dtype = F64,
                subdivisions: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Perturbed icospheres projected into a size x size raster: uv (B, V, 2), depth (B, V), faces."""
    gen = torch.Generator().manual_seed(seed)
    verts, faces = icosphere(subdivisions, dtype=dtype)
    verts = verts * (0.3 + 0.05 * torch.randn(batch, verts.shape[0], 1, generator=gen, dtype=dtype))
    az = torch.rand(batch, generator=gen, dtype=dtype) * 360.0
    el = torch.rand(batch, generator=gen, dtype=dtype) * 60.0 - 30.0
    dist = torch.full((batch,), 2.0, dtype=dtype)
    offset = torch.randn(batch, 2, generator=gen, dtype=dtype)
    uv, depth = ViewpointCamera((size, size))(verts, az, el, dist, offset=offset)
    return uv, depth, faces


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a * b).sum() / (a + b - a * b).sum().clamp_min(1e-9))


# ------------------------------------------------------------------------------------------------
# Slow Python-loop reference (scalar maths, autograd through torch scalars)
# ------------------------------------------------------------------------------------------------

def loop_silhouette(uv: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                    sigma: float) -> torch.Tensor:
    """uv (V, 2), one mesh: every pixel, every face, one edge at a time."""
    rows = []
    for i in range(height):
        row = []
        for j in range(width):
            px, py = j + 0.5, i + 0.5
            log_sum = uv.new_zeros(())
            for f in faces.tolist():
                a, b, c = uv[f[0]], uv[f[1]], uv[f[2]]
                best = None
                for p0, p1 in ((a, b), (b, c), (c, a)):
                    ex, ey = p1[0] - p0[0], p1[1] - p0[1]
                    wx, wy = px - p0[0], py - p0[1]
                    t = torch.clamp((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
                    d2 = (wx - t * ex) ** 2 + (wy - t * ey) ** 2
                    best = d2 if best is None or d2 < best else best
                area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
                s0 = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])
                s1 = (c[0] - b[0]) * (py - b[1]) - (c[1] - b[1]) * (px - b[0])
                s2 = (a[0] - c[0]) * (py - c[1]) - (a[1] - c[1]) * (px - c[0])
                inside = bool(s0 * area > 0 and s1 * area > 0 and s2 * area > 0)
                prob = torch.sigmoid((best if inside else -best) / sigma)
                log_sum = log_sum + torch.clamp(torch.log(1.0 - prob), min=math.log(DEFAULT_CLAMP_EPS))
            row.append(1.0 - torch.exp(log_sum))
        rows.append(torch.stack(row))
    return torch.stack(rows)


# ------------------------------------------------------------------------------------------------
# Mesh template
# ------------------------------------------------------------------------------------------------

def test_icosphere_template():
    verts, faces = icosphere()
    assert verts.shape == (642, 3) and faces.shape == (1280, 3)
    assert verts.dtype == torch.float32 and faces.dtype == torch.long
    torch.testing.assert_close(verts.norm(dim=1), torch.ones(642))
    assert edges(faces).shape == (1920, 2)  # Euler: V - E + F = 2
    normals = vertex_normals(verts[None], faces)[0]
    assert (normals * verts).sum(dim=1).min() > 0.99  # outward winding


def test_mirror_index_and_symmetrize():
    verts, _ = icosphere()
    m = mirror_index(verts)
    assert torch.equal(m[m], torch.arange(642))
    torch.testing.assert_close(reflect(verts[m]), verts)
    on_plane = verts[:, 0].abs() < 1e-6
    assert torch.equal(m[on_plane], torch.arange(642)[on_plane])
    noisy = verts[None] + 0.05 * torch.randn(2, 642, 3, generator=torch.Generator().manual_seed(0))
    sym = symmetrize(noisy, m)
    torch.testing.assert_close(reflect(sym[:, m]), sym)
    with pytest.raises(ValueError, match=r"template is not mirror-symmetric about axis 0 \(max error 0\.\d+\)"):
        mirror_index(noisy[0])


# ------------------------------------------------------------------------------------------------
# Signed distance and single-triangle values (hand-checked)
# ------------------------------------------------------------------------------------------------

def test_signed_dist2_hand_checked():
    tri = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], dtype=F64)
    points = torch.tensor([[1.0, 1.0], [5.0, 0.0], [-1.0, -1.0], [2.0, 0.0], [3.0, 3.0], [2.0, 1.0]],
                          dtype=F64)
    expected = torch.tensor([1.0, -1.0, -2.0, 0.0, -2.0, 0.5], dtype=F64)
    torch.testing.assert_close(signed_dist2(points, tri), expected)
    torch.testing.assert_close(signed_dist2(points, tri.flip(0)), expected)  # winding-independent
    degenerate = torch.tensor([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]], dtype=F64)
    torch.testing.assert_close(signed_dist2(torch.tensor([1.0, 0.0], dtype=F64), degenerate),
                               torch.tensor(0.0, dtype=F64))
    assert signed_dist2(torch.tensor([1.0, 1.0], dtype=F64), degenerate) == -1.0


def test_one_triangle_soft_values():
    uv, faces = one_triangle()
    sigma = 0.5
    sil = render_soft_silhouette(uv, faces, (8, 10), sigma=sigma, eps=1e-12)[0]
    assert sil.shape == (8, 10)
    # pixel (2, 2): centre (2.5, 2.5), inside, 1.5 px from the two legs
    assert sil[2, 2] == pytest.approx(torch.sigmoid(torch.tensor(2.25 / sigma, dtype=F64)).item(), rel=1e-12)
    # pixel (0, 3): centre (3.5, 0.5), outside, 0.5 px above the edge y = 1
    assert sil[0, 3] == pytest.approx(torch.sigmoid(torch.tensor(-0.25 / sigma, dtype=F64)).item(), rel=1e-12)
    # pixel (0, 0): centre (0.5, 0.5), nearest point is the corner (1, 1): d^2 = 0.5
    assert sil[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(-0.5 / sigma, dtype=F64)).item(), rel=1e-12)
    # pixel (4, 4): centre (4.5, 4.5), outside beyond the hypotenuse x + y = 8: d^2 = 0.5
    assert sil[4, 4] == pytest.approx(torch.sigmoid(torch.tensor(-0.5 / sigma, dtype=F64)).item(), rel=1e-12)
    # far pixels are culled: exactly zero beyond the margin
    assert sil[7, 9] == 0.0
    hard = rasterize_hard(uv, torch.ones(1, 3, dtype=F64), faces, (8, 10))
    inside = torch.zeros(8, 10, dtype=torch.bool)
    for i in range(8):
        for j in range(10):
            x, y = j + 0.5, i + 0.5
            inside[i, j] = x >= 1 and y >= 1 and x + y <= 8
    assert torch.equal(hard.mask[0], inside)
    assert torch.equal(hard.face_idx[0], torch.where(inside, 0, -1))
    torch.testing.assert_close(hard.depth[0], inside.to(F64))


def test_margin_covers_every_non_negligible_pair():
    uv, depth, faces = random_mesh(2, 16, seed=1)
    sigma, eps = 0.3, 1e-3
    frags = rasterize_soft(uv, faces, (16, 16), sigma=sigma, depth=depth, eps=eps)
    d2 = signed_dist2(torch.stack(torch.meshgrid(torch.arange(16.0, dtype=F64) + 0.5,
                                                 torch.arange(16.0, dtype=F64) + 0.5, indexing="xy"), -1)
                      [None, None], uv[:, faces][:, :, None, None])          # (B, F, H, W)
    needed = torch.sigmoid(d2 / sigma) >= eps
    b, f, i, j = needed.nonzero(as_tuple=True)
    need_keys = set(((b * faces.shape[0] + f) * 256 + i * 16 + j).tolist())
    got = frags.real  # drop the padding of the per-face windows
    assert not got.all() and got.any()
    got_keys = set((frags.face[got] * 256 + frags.pix[got] % 256).tolist())
    assert need_keys <= got_keys
    assert soft_margin(sigma, eps) == pytest.approx(math.sqrt(sigma * math.log(1 / eps - 1)))
    # every kept pair's distance is the reference distance
    n = frags.face[got]
    ref = d2.reshape(-1, 256)[n, frags.pix[got] % 256]
    torch.testing.assert_close(frags.dist2[got], ref)


# ------------------------------------------------------------------------------------------------
# Culled rasteriser vs references: values and gradients
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.05, 0.5, 2.0])
def test_soft_matches_dense_values_and_gradients(sigma):
    uv, depth, faces = random_mesh(2, 20, seed=2)
    uv = uv.clone().requires_grad_(True)
    ours = render_soft_silhouette(uv, faces, (20, 20), sigma=sigma, depth=depth, eps=1e-12)
    dense = soft_silhouette_dense(uv, faces, (20, 20), sigma=sigma, depth=depth)
    torch.testing.assert_close(ours, dense, atol=1e-10, rtol=0)
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), uv)
    (g_dense,) = torch.autograd.grad((dense * weights).sum(), uv)
    torch.testing.assert_close(g_ours, g_dense, atol=1e-8, rtol=1e-6)
    assert g_ours.abs().sum() > 0


def test_soft_default_eps_close_to_dense_float32():
    uv, depth, faces = random_mesh(3, 24, seed=4, dtype=torch.float32, subdivisions=2)
    ours = render_soft_silhouette(uv, faces, (24, 24), depth=depth)
    dense = soft_silhouette_dense(uv, faces, (24, 24), sigma=DEFAULT_SIGMA, depth=depth)
    assert ours.dtype == torch.float32
    assert (ours - dense).abs().max() < 1e-3


def test_soft_matches_python_loop():
    uv = torch.tensor([[1.2, 0.7], [5.3, 1.9], [2.1, 4.6], [4.4, 5.2]], dtype=F64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    sigma = 0.7
    ours = render_soft_silhouette(uv[None], faces, (6, 7), sigma=sigma, eps=1e-12)[0]
    ref = loop_silhouette(uv, faces, 6, 7, sigma)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    weights = torch.randn(6, 7, generator=torch.Generator().manual_seed(5), dtype=F64)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), uv)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), uv)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-10, rtol=1e-8)


def test_gradcheck_float64():
    uv = torch.tensor([[[1.3, 0.8], [4.7, 1.6], [2.2, 4.1], [5.1, 4.4]]], dtype=F64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])

    def fn(x: torch.Tensor) -> torch.Tensor:
        return render_soft_silhouette(x, faces, (5, 6), sigma=0.6, eps=1e-12)

    assert torch.autograd.gradcheck(fn, (uv,), eps=1e-6, atol=1e-6)


def test_chunking_does_not_change_results():
    uv, depth, faces = random_mesh(2, 16, seed=6)
    uv = uv.clone().requires_grad_(True)
    big = render_soft_silhouette(uv, faces, (16, 16), sigma=0.4, depth=depth)
    small = render_soft_silhouette(uv, faces, (16, 16), sigma=0.4, depth=depth, max_pairs=37)
    torch.testing.assert_close(big, small, atol=1e-12, rtol=0)
    (g_big,) = torch.autograd.grad(big.sum(), uv)
    (g_small,) = torch.autograd.grad(small.sum(), uv)
    torch.testing.assert_close(g_big, g_small, atol=1e-12, rtol=0)
    h_big = rasterize_hard(uv.detach(), depth, faces, (16, 16))
    h_small = rasterize_hard(uv.detach(), depth, faces, (16, 16), max_pairs=37)
    assert torch.equal(h_big.face_idx, h_small.face_idx)


def test_blend_alone_from_handmade_fragments():
    uv, faces = one_triangle()
    frags = rasterize_soft(uv, faces, (8, 8), sigma=1.0)
    sil = soft_silhouette(frags)
    # blend with a smaller sigma than the culling one is allowed (the margin only shrinks)
    sharper = soft_silhouette(frags, sigma=0.1)
    inside = render_hard_silhouette(uv, torch.ones(1, 3, dtype=F64), faces, (8, 8)).bool()
    assert (sharper[inside] >= sil[inside]).all() and (sharper[~inside] <= sil[~inside]).all()


# ------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------

def test_range_and_monotone_in_sigma_outside():
    uv, depth, faces = random_mesh(2, 24, seed=7, dtype=torch.float32)
    hard = rasterize_hard(uv, depth, faces, (24, 24)).mask
    previous = None
    for sigma in (0.02, 0.1, 0.5, 2.0):
        sil = render_soft_silhouette(uv, faces, (24, 24), sigma=sigma, depth=depth)
        assert sil.min() >= 0.0 and sil.max() <= 1.0
        if previous is not None:
            assert (sil[~hard] >= previous[~hard] - 1e-6).all()
        previous = sil


def test_hard_matches_soft_at_tiny_sigma():
    uv, depth, faces = random_mesh(4, 32, seed=8, dtype=F64, subdivisions=3)
    hard = rasterize_hard(uv, depth, faces, (32, 32)).mask
    soft = render_soft_silhouette(uv, faces, (32, 32), sigma=1e-6, depth=depth)
    mismatch = ((soft > 0.5) != hard).sum().item()
    assert mismatch <= 0.002 * hard.numel()
    assert iou(soft > 0.5, hard) > 0.995


def test_hard_zbuffer_picks_the_nearest_face():
    # two overlapping triangles, the second one nearer on the right half
    uv = torch.tensor([[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [2.0, 0.0], [10.0, 0.0], [10.0, 8.0]]])
    depth = torch.tensor([[2.0, 2.0, 2.0, 1.0, 1.0, 1.0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frags = rasterize_hard(uv, depth, faces, (8, 10))
    assert frags.face_idx[0, 0, 4] == 1 and frags.depth[0, 0, 4] == 1.0  # covered by both
    assert frags.face_idx[0, 4, 1] == 0 and frags.depth[0, 4, 1] == 2.0  # only the far one
    assert frags.face_idx[0, 7, 0] == 0
    assert frags.face_idx[0, 7, 1] == -1 and frags.depth[0, 7, 1] == 0.0
    torch.testing.assert_close(frags.bary.sum(-1)[frags.mask], torch.ones(int(frags.mask.sum())))


def test_hard_depth_is_perspective_correct():
    # a square at z = 2 tilted about the y axis: depth at each pixel = the ray-plane intersection
    K = geometry.intrinsics(20.0, 16, 16)
    corners = torch.tensor([[-0.5, -0.5, -0.25], [0.5, -0.5, 0.25], [0.5, 0.5, 0.25], [-0.5, 0.5, -0.25]],
                           dtype=F64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    R, t = torch.eye(3, dtype=F64)[None], torch.tensor([[0.0, 0.0, 2.0]], dtype=F64)
    uv, depth = project_full(corners[None], R, t, K)
    frags = rasterize_hard(uv, depth, faces, (16, 16))
    rays = geometry.pixel_rays(K, 16, 16)                          # unit rays (H, W, 3)
    normal = torch.tensor([-0.5, 0.0, 1.0], dtype=F64)               # plane z = 2 + x / 2: n . X = 2
    lam = 2.0 / (rays @ normal)
    expected = lam * rays[..., 2]
    m = frags.mask[0]
    assert m.sum() > 50
    torch.testing.assert_close(frags.depth[0][m], expected[m])


def test_hard_matches_trimesh_ray_casting():
    import trimesh

    verts, faces = icosphere(2, dtype=F64)
    verts = verts * torch.tensor([0.4, 0.25, 0.3], dtype=F64)
    R, t = geometry.view_transform(*(torch.tensor([v], dtype=F64) for v in (35.0, 20.0, 1.6)))
    K = geometry.intrinsics(40.0, 40, 32)
    uv, depth = project_full(verts[None], R, t, K)
    frags = rasterize_hard(uv, depth, faces, (32, 40))
    cam_verts = geometry.transform_points(verts, R[0], t[0]).numpy()
    mesh = trimesh.Trimesh(cam_verts, faces.numpy(), process=False)
    rays = geometry.pixel_rays(K, 40, 32).reshape(-1, 3).numpy()
    hit = torch.as_tensor(mesh.ray.intersects_first(ray_origins=0 * rays, ray_directions=rays) >= 0)
    hit = hit.reshape(32, 40)
    assert hit.sum() > 150
    assert (hit != frags.mask[0]).sum() <= 2  # pixel centres within rounding of an edge
    both = hit & frags.mask[0]
    locations, index_ray, _ = mesh.ray.intersects_location(0 * rays, rays, multiple_hits=False)
    ray_depth = torch.zeros(32 * 40, dtype=F64)
    ray_depth[torch.as_tensor(index_ray)] = torch.as_tensor(locations[:, 2])
    torch.testing.assert_close(frags.depth[0][both], ray_depth.reshape(32, 40)[both], atol=1e-6, rtol=1e-6)


def test_culled_faces_and_empty_inputs():
    uv, faces = one_triangle(torch.float32)
    uv = uv.clone().requires_grad_(True)
    behind = torch.tensor([[1.0, -1.0, 1.0]])
    sil = render_soft_silhouette(uv, faces, (8, 8), depth=behind)
    assert sil.abs().sum() == 0
    sil.sum().backward()
    assert uv.grad is not None and uv.grad.abs().sum() == 0
    assert not render_hard_silhouette(uv.detach(), behind, faces, (8, 8)).any()
    off = uv.detach() + 100.0
    assert render_soft_silhouette(off, faces, (8, 8)).sum() == 0
    nan = torch.full_like(uv.detach(), float("nan"))
    assert render_soft_silhouette(nan, faces, (8, 8)).sum() == 0


def test_sigma_from_ndc():
    assert sigma_from_ndc(1e-4, (64, 64)) == pytest.approx(0.1024)
    assert sigma_from_ndc(1e-4, (32, 48)) == pytest.approx(0.0256)


# ------------------------------------------------------------------------------------------------
# Camera conventions
# ------------------------------------------------------------------------------------------------

def test_origin_projects_to_roi_centre():
    cam = ViewpointCamera((48, 64), focal=50.0)
    origin = torch.zeros(3, 1, 3)
    az, el = torch.tensor([0.0, 37.0, -120.0]), torch.tensor([0.0, 20.0, -40.0])
    dist = torch.tensor([2.0, 3.0, 1.5])
    uv, depth = cam(origin, az, el, dist)
    torch.testing.assert_close(uv[:, 0], torch.tensor([[32.0, 24.0]] * 3))
    torch.testing.assert_close(depth[:, 0], dist)
    offset = torch.tensor([[1.0, -2.0], [0.0, 0.0], [3.0, 4.0]])
    uv, _ = cam(origin, az, el, dist, offset=offset, scale=torch.tensor([2.0, 1.0, 0.5]))
    torch.testing.assert_close(uv[:, 0], torch.tensor([[32.0, 24.0]]) + offset)


def test_viewpoint_axes():
    cam = ViewpointCamera((64, 64), focal=64.0)
    pts = torch.tensor([[[0.3, 0.0, 0.0], [-0.3, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.3]]])
    one = torch.ones(1)
    uv, depth = cam(pts, 0 * one, 0 * one, 2 * one)          # front view: camera on +Z
    assert uv[0, 0, 0] > 32 > uv[0, 1, 0]                   # +X to the right
    assert uv[0, 2, 1] < 32                                 # +Y up (y down in pixels)
    assert depth[0, 3] < 2.0                                # the front +Z is nearer
    uv, depth = cam(pts, 90 * one, 0 * one, 2 * one)         # azimuth 90 sees the +X side
    assert depth[0, 0] < depth[0, 1]
    assert depth[0, 0] == pytest.approx(1.7)
    assert uv[0, 3, 0] < 32                                 # the front (+Z) is on the left
    uv, depth = cam(pts, 0 * one, 45 * one, 2 * one)         # from above: +Y is nearer
    assert depth[0, 2] < 2.0
    # scale zooms about the (offset) centre
    uv1, _ = cam(pts, 0 * one, 0 * one, 2 * one, scale=2 * one, offset=torch.tensor([[5.0, 0.0]]))
    uv0, _ = cam(pts, 0 * one, 0 * one, 2 * one)
    torch.testing.assert_close(uv1 - torch.tensor([37.0, 32.0]), 2 * (uv0 - 32.0))


def test_project_full_matches_viewpoint_camera():
    gen = torch.Generator().manual_seed(9)
    verts = torch.randn(2, 10, 3, generator=gen, dtype=F64) * 0.3
    az, el, dist = torch.tensor([30.0, 200.0], dtype=F64), torch.tensor([10.0, -25.0], dtype=F64), \
        torch.tensor([2.0, 2.5], dtype=F64)
    R, t = geometry.view_transform(az, el, dist)
    K = geometry.intrinsics(80.0, 64, 48)
    uv_full, depth_full = project_full(verts, R, t, K)
    uv_vp, depth_vp = project_viewpoint(verts, az, el, dist, 80.0, (48, 64))
    torch.testing.assert_close(uv_full, uv_vp)
    torch.testing.assert_close(depth_full, depth_vp)
    uv_b, _ = project_full(verts, R, t, K.expand(2, 3, 3))
    torch.testing.assert_close(uv_b, uv_full)
    # matches geometry.project point by point
    cam_pts = geometry.transform_points(verts[1], R[1], t[1])
    torch.testing.assert_close(uv_full[1], geometry.project(cam_pts, K)[0])


def test_gradients_reach_the_camera():
    verts, faces = icosphere(2)
    params = [torch.tensor([20.0], requires_grad=True), torch.tensor([10.0], requires_grad=True),
              torch.tensor([2.0], requires_grad=True), torch.tensor([[1.0, -1.0]], requires_grad=True),
              torch.tensor([1.0], requires_grad=True)]
    uv, depth = ViewpointCamera((32, 32))(verts[None] * 0.3 * torch.tensor([1.0, 0.6, 0.8]), *params)
    sil = render_soft_silhouette(uv, faces, (32, 32), sigma=0.2, depth=depth)
    (sil * torch.linspace(0, 1, 32)).sum().backward()
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_camera_module_moves_with_to():
    cam = ViewpointCamera((32, 32)).to(torch.float64)
    assert cam.focal == pytest.approx(geometry.focal_from_fov(30.0, 32))
    uv, _ = cam(torch.zeros(1, 1, 3, dtype=F64), *(torch.ones(1, dtype=F64) * v for v in (0.0, 0.0, 2.0)))
    assert uv.dtype == F64


# ------------------------------------------------------------------------------------------------
# Fitting
# ------------------------------------------------------------------------------------------------

def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="xy")


def _fit_soft_iou(render, target: torch.Tensor, optimizer: torch.optim.Optimizer, steps: int) -> None:
    """Minimise 1 - soft IoU between ``render()`` and ``target`` for ``steps`` optimiser steps."""
    for _ in range(steps):
        sil = render()
        loss = 1.0 - (sil * target).sum() / (sil + target - sil * target).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.slow
def test_fit_icosphere_vertices_to_ellipse():
    size = 32
    x, y = _grid(size)
    target = ((((x - 19) / 11) ** 2 + ((y - 13) / 6) ** 2) <= 1).float()[None]
    verts, faces = icosphere()
    cam = ViewpointCamera((size, size))
    az, el, dist = torch.zeros(1), torch.zeros(1), torch.full((1,), 2.0)
    # per-vertex radial displacement (keeps the mesh star-shaped) and a translation
    log_radius = torch.full((1, 642, 1), math.log(0.15), requires_grad=True)
    centre = torch.zeros(1, 1, 3, requires_grad=True)
    opt = torch.optim.Adam([log_radius, centre], lr=0.02)
    sigma = sigma_from_ndc(1e-4, (size, size))

    def render(hard: bool = False) -> torch.Tensor:
        uv, depth = cam(verts[None] * log_radius.exp() + centre, az, el, dist)
        if hard:
            return render_hard_silhouette(uv.detach(), depth.detach(), faces, (size, size))
        return render_soft_silhouette(uv, faces, (size, size), sigma=sigma, depth=depth)

    assert iou(render(hard=True), target) < 0.5
    _fit_soft_iou(render, target, opt, steps=150)
    assert iou(render(hard=True), target) > 0.9


def test_fit_camera_scale_and_offset_to_box():
    import trimesh

    size = 32
    box = trimesh.creation.box(extents=(0.5, 0.3, 0.4))
    box_verts = torch.as_tensor(box.vertices, dtype=torch.float32)[None]
    box_faces = torch.as_tensor(box.faces, dtype=torch.long)
    cam = ViewpointCamera((size, size))
    az, el, dist = torch.tensor([30.0]), torch.tensor([20.0]), torch.tensor([2.0])
    uv, depth = cam(box_verts, az, el, dist, offset=torch.tensor([[4.0, -3.0]]), scale=torch.tensor([1.3]))
    target = render_hard_silhouette(uv, depth, box_faces, (size, size))
    offset = torch.tensor([[-4.0, 3.0]], requires_grad=True)
    log_scale = torch.tensor([math.log(0.6)], requires_grad=True)
    opt = torch.optim.Adam([offset, log_scale], lr=0.05)

    def render(hard: bool = False) -> torch.Tensor:
        uv, depth = cam(box_verts, az, el, dist, offset=offset, scale=log_scale.exp())
        if hard:
            return render_hard_silhouette(uv.detach(), depth.detach(), box_faces, (size, size))
        return render_soft_silhouette(uv, box_faces, (size, size), sigma=0.1, depth=depth)

    assert iou(render(hard=True), target) < 0.5
    _fit_soft_iou(render, target, opt, steps=200)
    assert iou(render(hard=True), target) > 0.9
    assert log_scale.exp().item() == pytest.approx(1.3, rel=0.1)


# ------------------------------------------------------------------------------------------------
# Device
# ------------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    uv, depth, faces = random_mesh(2, 32, seed=10, dtype=torch.float32, subdivisions=3)
    uv_cpu = uv.clone().requires_grad_(True)
    uv_gpu = uv.to("cuda").requires_grad_(True)
    sil_cpu = render_soft_silhouette(uv_cpu, faces, (32, 32), depth=depth)
    sil_gpu = render_soft_silhouette(uv_gpu, faces.to("cuda"), (32, 32), depth=depth.to("cuda"))
    assert sil_gpu.device.type == "cuda"
    torch.testing.assert_close(sil_gpu.cpu(), sil_cpu, atol=1e-5, rtol=0)
    sil_cpu.sum().backward()
    sil_gpu.sum().backward()
    torch.testing.assert_close(uv_gpu.grad.cpu(), uv_cpu.grad, atol=1e-3, rtol=1e-3)
    hard_gpu = rasterize_hard(uv.to("cuda"), depth.to("cuda"), faces.to("cuda"), (32, 32))
    hard_cpu = rasterize_hard(uv, depth, faces, (32, 32))
    assert (hard_gpu.mask.cpu() != hard_cpu.mask).sum() <= 2
