"""``argparse`` types that refuse bad values at parse time (argparse prints ``amodal3d CMD: error:
argument --x: ...`` and exits 2): whole numbers in a range, finite floats, probabilities, seeds, split
names, torch devices, and :func:`checked` to use a library parser that raises
:class:`~amodal3d.errors.Amodal3dError`."""

from __future__ import annotations

import argparse
import math
import re

from amodal3d.engine.config import out_of_range
from amodal3d.errors import Amodal3dError
from amodal3d.paths import check_split_name

SEED_MAX = 2**32 - 1  # numpy seeds are unsigned 32-bit words


def int_range(low: int | None = None, high: int | None = None):
    """A type accepting whole numbers in ``[low, high]`` (either bound may be None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        bounds = out_of_range(value, low, high)
        if bounds:
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
seed = int_range(0, SEED_MAX)


def float_range(low: float | None = None, high: float | None = None, low_open: bool = False,
                high_open: bool = False):
    """A type accepting finite floats in ``[low, high]`` (an end left out of the interval with
    ``low_open`` / ``high_open``; either bound may be None)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        bounds = out_of_range(value, low, high, low_open=low_open, high_open=high_open)
        if bounds:
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


probability = float_range(0.0, 1.0)
open_fraction = float_range(0.0, 1.0, low_open=True, high_open=True)  # e.g. an interval's coverage
positive_float = float_range(0.0, None, low_open=True)


def checked(parse, what: str = ""):
    """A type from a library parser ``parse(text)`` that raises :class:`Amodal3dError`: its message
    (less a leading ``what: ``, which argparse already prints as ``argument WHAT:``) becomes the
    argparse error."""

    def wrapper(text: str):
        try:
            return parse(text)
        except Amodal3dError as error:
            message = str(error)
            raise argparse.ArgumentTypeError(message.removeprefix(f"{what}: ") if what else message) from None

    wrapper.__name__ = getattr(parse, "__name__", "value")
    return wrapper


def split_name(text: str) -> str:
    """A plain split name (:func:`amodal3d.paths.check_split_name`)."""
    return checked(lambda t: check_split_name(t, "split"), "split")(text)


def device(text: str) -> str:
    """A torch device this machine has, as :func:`amodal3d.engine.distributed.resolve_device` reads it
    (``auto``, ``cpu``, ``cuda``, ``cuda:N``), resolved: ``"cpu"`` or ``"cuda:N"``. For a single process
    (a torchrun worker resolves ``cuda`` to its own GPU: give it the text)."""
    from amodal3d.engine.distributed import resolve_device  # imports torch: only when --device is parsed

    try:
        return str(resolve_device(text))
    except Amodal3dError as error:
        raise argparse.ArgumentTypeError(re.sub(r"^--device \S*: ", "", str(error))) from None
    except (RuntimeError, ValueError) as error:  # e.g. 'cuda:x'
        raise argparse.ArgumentTypeError(f"not a device: {text!r} ({error})") from None


def add_checkpoint_flags(parser) -> None:
    """``--init-backbone`` / ``--init-detector``: torchvision checkpoint files a detector starts from (one of
    them; ``amodal3d.models.pretrained`` reads them)."""
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init-backbone", default=None, metavar="CHECKPOINT",
                       help="start the detector's backbone from torchvision's ImageNet ResNet-50 or MobileNetV3-Large "
                            "checkpoint (.pth, read with weights_only, or .safetensors); ignored on resume")
    start.add_argument("--init-detector", default=None, metavar="CHECKPOINT",
                       help="start the detector from torchvision's COCO Mask R-CNN checkpoint (whole with the "
                            "r50-fpn-torchvision preset, detector_r50_fpn_coco.yaml); tensors of another shape are "
                            "re-initialised and listed, class rows mapped by name; ignored on resume")
