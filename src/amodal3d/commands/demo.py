"""``amodal3d demo``: the README's first command."""

from __future__ import annotations


def register(sub, train_sub) -> None:
    p = sub.add_parser("demo", help="generate a few occluded scenes and write overlays (no arguments needed)")
    p.add_argument("--out", default="demo_out", help="folder for the figures")
    p.add_argument("--n", type=int, default=4, help="number of scenes")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args) -> int:
    from pathlib import Path

    import numpy as np

    from amodal3d import CATEGORY_NAMES
    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.scene import SceneConfig, render_scene
    from amodal3d.io import atomic_save_image
    from amodal3d.masks import decode_rle
    from amodal3d.visualize import grid, overlay

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = open_mesh_source("procedural", seed=args.seed)
    tiles = []
    for i in range(args.n):
        scene = render_scene(np.random.default_rng([args.seed, i]), source, "test", SceneConfig())
        anns = scene.annotations
        labels = [f"{CATEGORY_NAMES[a['category_id'] - 1]} {a['occlude_rate']:.0%} hidden" for a in anns]
        tiles.append(overlay(scene.image, [decode_rle(a["visible_segm"]) for a in anns],
                             [decode_rle(a["amodal_segm"]) for a in anns], labels))
        atomic_save_image(tiles[-1], out / f"scene_{i}.png")
    grid(tiles, min(args.n, 4), out / "demo.png")
    print(f"wrote {out / 'demo.png'}: {args.n} generated scenes, visible parts solid, hidden parts hatched")
    return 0
