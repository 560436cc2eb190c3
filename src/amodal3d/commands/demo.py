"""``amodal3d demo``: the README's first command. Generates a few occluded scenes (meshes unseen in
training), runs the shipped model end to end, writes overlays and a side-by-side figure, prints mIoU
(end to end as ``amodal3d evaluate`` scores it: every object step 1 proposes; the figure shows the objects
``amodal3d predict`` keeps)."""

from __future__ import annotations

from amodal3d.commands.arguments import device, int_range, seed
from amodal3d.commands.data import add_mesh_source_arguments

MAX_DRAWN, MAX_SCORED = 100, 10_000


def register(sub, train_sub) -> None:
    p = sub.add_parser("demo", help="run the shipped model on a few generated occluded scenes (no arguments needed)")
    p.add_argument("--out", default="demo_out", help="folder for the figures")
    p.add_argument("--n", type=int_range(1, MAX_DRAWN), default=4, help=f"number of scenes drawn (1 to {MAX_DRAWN})")
    p.add_argument("--scored", type=int_range(1, MAX_SCORED), default=24,
                   help="number of scenes scored (the first --n of them drawn); at least --n")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--weights", default="cpu-small", help="built-in model name or pipeline folder")
    p.add_argument("--device", type=device, default="cpu")
    add_mesh_source_arguments(p)  # scenes draw the meshes of split --shapes-split, else test
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from amodal3d import CATEGORY_NAMES
    from amodal3d.data.meshes import open_mesh_source
    from amodal3d.data.preview import shaded_view
    from amodal3d.data.scene import SceneConfig, render_scene
    from amodal3d.errors import DataError
    from amodal3d.evaluation import metrics
    from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD
    from amodal3d.io import atomic_save_image
    from amodal3d.masks import decode_rle, xywh_to_xyxy
    from amodal3d.paths import check_output_dir, check_output_file, check_regular_file
    from amodal3d.pipeline import DEFAULT_SCORE_THRESHOLD, AmodalSegmenter, PipelineOptions
    from amodal3d.structures import GivenVisible
    from amodal3d.visualize import grid, overlay

    # every file the demo writes, checked before the model loads and the scenes render
    inputs = [Path(p) for p in (args.weights, args.shapes) if p != "procedural" and Path(p).exists()]
    if Path(args.weights).exists() and not Path(args.weights).is_dir():  # a FIFO would block its reader
        check_regular_file(args.weights, "--weights")
    out = check_output_dir(args.out, inputs)
    for name in ("demo.png", *(f"scene_{i}_amodal.png" for i in range(args.n))):
        check_output_file(out / name, inputs)
    # scored as amodal3d evaluate scores (every object step 1 proposes); drawn as predict keeps them
    segmenter = AmodalSegmenter.from_pretrained(args.weights, PipelineOptions(
        device=args.device, keep_by="objectness", score_threshold=EVAL_SCORE_THRESHOLD))
    source = open_mesh_source(args.shapes, seed=args.seed, only_split=args.shapes_split)
    split = args.shapes_split or "test"
    if not any(source.mesh_ids(c, split) for c in source.categories):
        raise DataError(f"{args.shapes}: no meshes in split {split} (give --shapes-split {split} to use them all)")
    names = lambda labels: [CATEGORY_NAMES[int(c) - 1] for c in labels]  # noqa: E731
    tiles, captions, labels, occlusion = [], [], [], []
    scores = {"end-to-end": ([], []), "given-visible": ([], [])}  # (amodal IoU, hidden-part IoU) per instance
    scenes = max(args.n, args.scored)
    for i in range(scenes):
        scene = render_scene(np.random.default_rng([args.seed, i]), source, split, SceneConfig())
        anns = scene.annotations
        gt_visible = np.stack([decode_rle(a["visible_segm"]) for a in anns])
        gt_amodal = np.stack([decode_rle(a["amodal_segm"]) for a in anns])
        pred = segmenter.predict(scene.image)
        match = metrics.match_greedy(metrics.mask_iou_matrix(gt_visible, pred.visible_masks))
        given = GivenVisible(gt_visible, np.array([a["category_id"] for a in anns]),
                             np.array([xywh_to_xyxy(a["visible_bbox"]) for a in anns], np.float32))
        completed = segmenter.predict(scene.image, given)
        for protocol, (p, m) in (("end-to-end", (pred, match)), ("given-visible", (completed, np.arange(len(anns))))):
            amodal_iou, hidden_iou = metrics.instance_scores(m, gt_amodal, gt_visible, p.amodal_masks)
            scores[protocol][0].extend(amodal_iou)
            scores[protocol][1].extend(hidden_iou)
        labels += [a["category_id"] for a in anns]
        occlusion += [a["occlude_rate"] for a in anns]
        if i >= args.n:  # scored, not drawn
            continue
        likely = pred.scores >= DEFAULT_SCORE_THRESHOLD
        pred_names = [f"{n} {s:.2f}" for n, s in zip(names(pred.labels[likely]), pred.scores[likely])]
        mesh_tile = Image.new("RGB", (256, 256), "white")
        if len(completed.labels):
            largest = int(np.argmax(completed.amodal_masks.reshape(len(completed.labels), -1).sum(1)))
            verts, faces = completed.extras["meshes"][largest]
            import trimesh

            view = completed.extras["viewpoints"][largest]
            mesh_tile = Image.fromarray(shaded_view(trimesh.Trimesh(verts, faces, process=False),
                                                    azimuth=view["azimuth"], elevation=view["elevation"], size=256))
        panels = [Image.fromarray(scene.image),
                  overlay(scene.image, pred.visible_masks[likely], pred.visible_masks[likely], pred_names),
                  overlay(scene.image, gt_visible, completed.amodal_masks, names(given.labels)),
                  overlay(scene.image, gt_visible, gt_amodal, names(a["category_id"] for a in anns)),
                  mesh_tile]
        tiles += panels
        captions += ["input", "step 1: detected visible", "A3D from true visible (hidden hatched)",
                     "ground truth", "3D shape (largest)"]
        out.mkdir(parents=True, exist_ok=True)
        atomic_save_image(panels[2], out / f"scene_{i}_amodal.png")
    grid(tiles, 5, out / "demo.png", captions)
    meshes = "procedural test meshes" if args.shapes == "procedural" else f"{args.shapes} meshes, split {split}"
    print(f"amodal3d demo: {scenes} generated scenes, {len(labels)} instances ({meshes}, unseen "
          f"in training), model {args.weights}; scored as amodal3d evaluate scores, drawn as predict keeps "
          f"objects (score >= {DEFAULT_SCORE_THRESHOLD})")
    for protocol, (amodal_iou, hidden_iou) in scores.items():
        summary = metrics.summarize(np.array(labels), np.array(occlusion), np.array(amodal_iou),
                                    np.array(hidden_iou), {i + 1: n for i, n in enumerate(CATEGORY_NAMES)})
        occluded = summary["occluded_miou"]
        print(f"  {protocol:13s} mIoU {100 * summary['miou']:.1f}   occluded mIoU "
              f"{'-' if occluded is None else f'{100 * occluded:.1f}'}")
    stages = segmenter.stage_ms()
    print("  per-stage ms/image: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    print(f"  wrote {out / 'demo.png'} (input | detected | A3D amodal | ground truth | mesh) and per-scene overlays")
    return 0
