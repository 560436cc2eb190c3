"""``amodal3d serve``: the browser page (Gradio; the ``demo`` extra)."""

from __future__ import annotations

import sys

from amodal3d.commands.arguments import device, int_range

INSTALL_HINT = 'amodal3d serve: needs gradio; install the extra with pip install -e ".[demo]"'


def register(sub, train_sub) -> None:
    p = sub.add_parser("serve", help="a browser page: upload an image, see amodal masks, meshes and occlusion order")
    p.add_argument("--weights", default="cpu-small", help="built-in model name or pipeline folder")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default loopback only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int_range(1, 65535), default=7860)
    p.add_argument("--device", type=device, default="cpu")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    from amodal3d.serve.app import launch

    print(f"amodal3d serve: loading {args.weights}; the page will be at http://{args.host}:{args.port}",
          file=sys.stderr)
    launch(args.weights, args.host, args.port, args.device, block=True)
    return 0
