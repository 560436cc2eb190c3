"""``amodal3d demo``: the README's first command. Generates a few occluded scenes (meshes unseen in
training), runs the shipped model end to end, writes overlays and a side-by-side figure, prints mIoU."""

from __future__ import annotations


def register(sub, train_sub) -> None:
    p = sub.add_parser("demo", help="run the shipped model on a few generated occluded scenes (no arguments needed)")
    p.add_argument("--out", default="demo_out", help="folder for the figures")
    p.add_argument("--n", type=int, default=4, help="number of scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="cpu-small", help="built-in model name or pipeline folder")
    p.add_argument("--device", default="cpu")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from amodal3d import CATEGORY_NAMES
    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.preview import shaded_view
    from amodal3d.data.scene import SceneConfig, render_scene
    from amodal3d.evaluation import metrics
    from amodal3d.io import atomic_save_image
    from amodal3d.masks import decode_rle
    from amodal3d.pipeline import AmodalSegmenter
    from amodal3d.visualize import grid, overlay

    out = Path(args.out)
    segmenter = AmodalSegmenter.from_pretrained(args.weights, device=args.device)
    source = open_mesh_source("procedural", seed=args.seed)
    names = lambda labels: [CATEGORY_NAMES[int(c) - 1] for c in labels]  # noqa: E731
    tiles, captions, ious, labels, occlusion, hidden = [], [], [], [], [], []
    for i in range(args.n):
        scene = render_scene(np.random.default_rng([args.seed, i]), source, "test", SceneConfig())
        anns = scene.annotations
        gt_visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        gt_amodal = np.stack([decode_rle(a["amodal_segm"]) for a in anns])
        pred = segmenter.predict(scene.image)
        match = metrics.match_greedy(metrics.mask_iou_matrix(gt_visible, pred.visible_masks))
        amodal_iou, hidden_iou = metrics.instance_scores(match, gt_amodal, gt_visible, pred.amodal_masks)
        ious += list(amodal_iou)
        hidden += list(hidden_iou)
        labels += [a["category_id"] for a in anns]
        occlusion += [a["occlude_rate"] for a in anns]
        pred_names = [f"{n} {s:.2f}" for n, s in zip(names(pred.labels), pred.scores)]
        mesh_tile = Image.new("RGB", (256, 256), "white")
        if len(pred.labels):
            largest = int(np.argmax(pred.amodal_masks.reshape(len(pred.labels), -1).sum(1)))
            verts, faces = pred.extras["meshes"][largest]
            import trimesh

            view = pred.extras["viewpoints"][largest]
            mesh_tile = Image.fromarray(shaded_view(trimesh.Trimesh(verts, faces, process=False),
                                                    azimuth=view["azimuth"], elevation=view["elevation"], size=256))
        panels = [Image.fromarray(scene.image),
                  overlay(scene.image, pred.visible_masks, pred.visible_masks, pred_names),
                  overlay(scene.image, pred.visible_masks, pred.amodal_masks, pred_names),
                  overlay(scene.image, gt_visible, gt_amodal, names(a["category_id"] for a in anns)),
                  mesh_tile]
        tiles += panels
        captions += ["input", "step 1: visible", "A3D amodal (hidden hatched)", "ground truth", "3D shape"]
        out.mkdir(parents=True, exist_ok=True)
        atomic_save_image(panels[2], out / f"scene_{i}_amodal.png")
    grid(tiles, 5, out / "demo.png", captions)
    summary = metrics.summarize(np.array(labels), np.array(occlusion), np.array(ious), np.array(hidden),
                                {i + 1: n for i, n in enumerate(CATEGORY_NAMES)})
    occluded = summary["occluded_miou"]
    print(f"amodal3d demo: {args.n} generated scenes, {len(ious)} instances (meshes unseen in training)")
    print(f"  mIoU {100 * summary['miou']:.1f}   occluded mIoU "
          f"{'-' if occluded is None else f'{100 * occluded:.1f}'}   (end-to-end, model {args.weights})")
    stages = segmenter.stage_ms()
    print("  per-stage ms/image: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    print(f"  wrote {out / 'demo.png'} (input | visible | amodal | ground truth | mesh) and per-scene overlays")
    return 0
