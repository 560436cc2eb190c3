"""The ``amodal3d`` command line. Each group of subcommands lives in ``amodal3d.commands.*``;
handlers import their heavy dependencies lazily so that ``amodal3d --help`` stays fast."""

from __future__ import annotations

import argparse
import sys

from amodal3d import __version__
from amodal3d.commands import data, demo, detector, evaluate, pipeline, serve, shape
from amodal3d.errors import Amodal3dError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amodal3d",
        description="Amodal instance segmentation guided by a 3D shape prior.")
    parser.add_argument("--version", action="version", version=f"amodal3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = sub.add_parser("train", help="train a stage of the pipeline (detector, shape, refine, all)")
    train_sub = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for module in (demo, data, shape, detector, evaluate, pipeline, serve):
        module.register(sub, train_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Amodal3dError as error:
        print(f"amodal3d: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the run could not read or write (disk full, permissions...)
        if error.filename is None:
            raise
        print(f"amodal3d: error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("amodal3d: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
