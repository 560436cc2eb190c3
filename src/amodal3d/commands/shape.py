"""Shape-prior commands: ``train shape`` and ``export-mesh``."""

from __future__ import annotations

import argparse

from amodal3d.commands.arguments import non_negative_int, positive_int, seed, split_name
from amodal3d.commands.detector import add_category_flags, training_labels


def register(sub, train_sub) -> None:
    p = train_sub.add_parser("shape", help="train steps 2-4 (3D shape + viewpoint, no 3D labels); resumable",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (generated or converted)")
    p.add_argument("--out", required=True, help="run folder (rerun the same command to resume)")
    p.add_argument("--config", default=None, help="YAML with 'model' (ShapeConfig) and 'train' sections")
    p.add_argument("--split", type=split_name, default="train")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--max-iters", type=positive_int, default=None)
    p.add_argument("--limit-images", type=positive_int, default=None,
                   help="use only the first N images (quick runs)")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="fine-tune from a trained shape model of the same architecture (e.g. with a smaller sigma)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=seed, default=None)
    p.add_argument("--quiet", action="store_true")
    add_category_flags(p)
    p.set_defaults(handler=cmd_train_shape)

    p = sub.add_parser("export-mesh", help="reconstruct one instance of a dataset and write its mesh (OBJ/GLB)")
    p.add_argument("--weights", required=True, help="shape model .safetensors (with its .json config beside)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", type=split_name, default="test")
    p.add_argument("--instance", type=non_negative_int, default=0, help="index among the split's instances")
    p.add_argument("--out", required=True, help="mesh file (.obj, .glb, .ply)")
    p.set_defaults(handler=cmd_export_mesh)


def cmd_train_shape(args) -> int:
    from amodal3d.models.shape_train import train_shape_from_args
    from amodal3d.paths import check_output_dir

    check_output_dir(args.out, inputs=[args.data])
    train_shape_from_args(args, training_labels(args, args.split))
    return 0


def cmd_export_mesh(args) -> int:
    from amodal3d.models.shape_train import export_instance_mesh

    path = export_instance_mesh(args.weights, args.data, args.split, args.instance, args.out)
    print(path)
    return 0
