"""Crash-safe file writing: write to a temporary file in the same folder, then rename.

A reader never sees a half-written file under its final name, and a run killed at any moment
leaves either the old file or the new one (and possibly the temporary ``.NAME.XXXXXXXX.tmp``, which
:func:`remove_temporaries` deletes when the run is resumed)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")


def _atomic_write(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    text = json.dumps(obj, indent=indent, sort_keys=False, separators=None if indent else (",", ":"))
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_image(image: Image.Image, path: str | Path, format: str = "PNG") -> Path:
    return _atomic_write(path, lambda handle: image.save(handle, format=format))


def remove_temporaries(folder: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporaries in ``folder`` that writers killed before their rename left behind: those of
    the files ``names`` only, or of any file when None. Only for a caller that is the one writer of those
    files (a temporary of a live writer would be deleted under it). Returns the deleted paths."""
    folder = Path(folder)
    wanted = None if names is None else set(names)
    removed = []
    try:
        with os.scandir(folder) as scan:
            entries = list(scan)
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match and (wanted is None or match.group(1) in wanted) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed
