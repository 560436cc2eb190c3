"""``amodal3d serve``: a browser page over the pipeline (Gradio, in the ``demo`` extra).

:mod:`.core` (upload -> prediction, table, downloads) and :mod:`.viewpoint` (re-render a prior at an
edited viewpoint) are plain functions that need no Gradio; :mod:`.app` builds the page from them."""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
