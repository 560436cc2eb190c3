"""Where amodal3d reads and writes: split names that are plain names, regular input files, and output
paths checked before any work starts (writable, of the right kind, never one of the inputs).

Every check raises :class:`~amodal3d.errors.Amodal3dError` (or its :class:`DataError`) with one line
naming the path and the problem."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from amodal3d.errors import Amodal3dError, DataError

_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_split_name(name: object, what: str = "--split") -> str:
    """A split name is a plain name (letters, digits, ``_ . -``; no ``/``, no leading dot, at most 64
    characters): it becomes ``annotations/NAME.json`` and ``images/NAME/`` under the dataset root, so a
    name such as ``../x`` would read or write outside it. Returns ``name``."""
    if not isinstance(name, str) or not _SPLIT_NAME.fullmatch(name) or ".." in name:
        raise Amodal3dError(f"{what}: split name {name!r} is not a plain name (1 to 64 letters, digits, '_', "
                            f"'.', '-', starting with a letter or digit; no '/' or '..')")
    return name


def resolved(path: str | Path) -> Path:
    """``path`` absolute, with ``..`` and symbolic links resolved (as far as it exists)."""
    return Path(os.path.realpath(path))


def lies_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies somewhere under it (after resolving both)."""
    return resolved(path).is_relative_to(resolved(folder))


def check_regular_file(path: str | Path, what: str = "") -> Path:
    """``path`` exists and is a regular file (not a folder, FIFO, socket or device, which could block
    a reader forever) that can be read. Returns it as a :class:`Path`; never opens it."""
    path = Path(path)
    prefix = f"{what}: " if what else ""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{prefix}{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{prefix}{path}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{prefix}{path}: is a folder, expected a file")
    if not stat.S_ISREG(mode):
        raise DataError(f"{prefix}{path}: not a regular file (a FIFO, socket or device): refused")
    if not os.access(path, os.R_OK):
        raise DataError(f"{prefix}{path}: cannot be read (permission denied)")
    return path


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return resolved(a) == resolved(b)


def _writable_ancestor(folder: Path, target: Path, what: str) -> None:
    """``folder``, or else its nearest existing ancestor, is a folder we may write into (and create
    ``folder`` in), so that ``target`` (``folder`` or a file in it) can be written."""
    for parent in [folder, *folder.parents]:  # a relative path ends at '.', named as given
        if parent.exists():
            if not parent.is_dir():
                raise Amodal3dError(f"{what}: {parent} is a file, so {target} cannot be created")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise Amodal3dError(f"{what}: {parent} is not writable, so {target} cannot be written")
            return
        if parent.is_symlink():  # a dangling link: writing would follow it somewhere else
            raise Amodal3dError(f"{what}: {parent} is a broken symbolic link, so {target} cannot be created")


def _as_input(path: Path, source: Path) -> str:
    return "" if str(path) == str(source) else f" ({source})"


def check_output_file(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "--out") -> Path:
    """An output file that can be written (atomically: a temporary beside it, then a rename) and is
    none of ``inputs`` (the files and folders the command reads): not one of those files, and not a
    file that already exists inside one of those folders. Returns it as a :class:`Path`."""
    path = Path(path)
    if path.is_dir():
        raise Amodal3dError(f"{what}: {path} is a folder, expected a file name")
    if path.exists() and not path.is_file():
        raise Amodal3dError(f"{what}: {path} is not a regular file: refused")
    for source in inputs:
        source = Path(source)
        if _same_path(path, source):
            raise Amodal3dError(f"{what}: {path} is an input of this command{_as_input(path, source)}; it "
                                f"would be overwritten: refused")
        if path.exists() and source.is_dir() and lies_inside(path, source):
            raise Amodal3dError(f"{what}: {path} is a file of the input folder {source}; it would be "
                                f"overwritten: refused")
    if path.exists() and not os.access(path, os.W_OK):
        raise Amodal3dError(f"{what}: {path} is not writable")
    _writable_ancestor(path.parent, path, what)
    return path


def check_output_dir(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "--out") -> Path:
    """An output folder that exists or can be created, is writable, and is none of the ``inputs``
    files or folders. Returns it as a :class:`Path`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise Amodal3dError(f"{what}: {path} exists and is not a folder")
    for source in inputs:
        if _same_path(path, Path(source)):
            raise Amodal3dError(f"{what}: {path} is an input of this command{_as_input(path, source)}: refused")
    _writable_ancestor(path, path, what)
    return path
