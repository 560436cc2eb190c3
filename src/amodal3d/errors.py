"""Errors that the CLI reports as one clear line (``amodal3d: error: ...``) instead of a traceback."""


class Amodal3dError(Exception):
    """Base class: a problem with the user's input, named with the file it comes from."""


class DataError(Amodal3dError):
    """Malformed annotation file, missing image, unknown category, bad mask..."""


class MeshError(Amodal3dError):
    """A mesh file that cannot be read, or a mesh source with no usable mesh."""


class WeightsError(Amodal3dError):
    """A weights file that is not safetensors, or whose config does not match the model."""
