"""What is wrong with a file that a reader could not read: damaged or truncated compression, or
binary bytes where a text format was expected.

Readers (structures, labelled data, trajectories) call :func:`file_fault` when their parser fails:
the parsers' own errors ("Error -3 while decompressing data", "Compressed file ended before the
end-of-stream marker was reached") say what broke inside them, not what is wrong with the file.
The checks run only on failure, so a readable file costs nothing extra.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["compression_of", "file_fault", "named_as_text"]

_CHUNK = 1 << 20
_COMPRESSIONS: tuple[tuple[bytes, str, Callable[[IO[bytes]], Any]], ...] = (
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", "bzip2", lambda raw: bz2.BZ2File(raw)),
    (b"\xfd7zXZ\x00", "xz", lambda raw: lzma.LZMAFile(raw)),
)
_AGAIN = "copy it again from its source, or make it again"


def compression_of(path: str | Path) -> str | None:
    """gzip, bzip2 or xz when the file's first bytes say so, else None."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return next((name for magic, name, _ in _COMPRESSIONS if head.startswith(magic)), None)


def _size(n: int) -> str:
    return f"{n} bytes" if n < 10_000 else f"{n / 1024:.0f} KB" if n < 10_000_000 else f"{n / 2**20:.0f} MB"


def _compression_fault(path: Path) -> str | None:
    name = compression_of(path)
    if name is None:
        return None
    opener = next(make for _, kind, make in _COMPRESSIONS if kind == name)
    size = path.stat().st_size
    with open(path, "rb") as raw:
        try:
            with opener(raw) as stream:
                while stream.read(_CHUNK):
                    pass
        except EOFError:
            return (
                f"the {name} stream ends before its end marker: the file is truncated "
                f"({_size(size)} on disk); {_AGAIN}"
            )
        except (OSError, zlib.error, lzma.LZMAError, ValueError) as err:
            detail = str(err).split(":")[-1].strip() or type(err).__name__
            where = min(raw.tell(), size)
            return (
                f"the {name} data is damaged about {_size(where)} into the file of {_size(size)} "
                f"({detail}); {_AGAIN}"
            )
    return None


def _head(path: Path) -> bytes:
    name = compression_of(path)
    opener = next((make for _, kind, make in _COMPRESSIONS if kind == name), None)
    with open(path, "rb") as raw:
        if opener is None:
            return raw.read(4096)
        try:
            with opener(raw) as stream:
                return stream.read(4096)
        except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError):
            return b""


def _binary_fault(path: Path) -> str | None:
    head = _head(path)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "it is an HDF5 file, not text; give the file the command expects"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (a model or checkpoint?), not text; give the file the command expects"
    try:
        head.decode("utf-8")
        text = b"\x00" not in head
    except UnicodeDecodeError as err:
        text = err.start >= len(head) - 3 and b"\x00" not in head  # a character cut at the 4 KB mark
    return None if text else "it holds binary data, not text; give the file the command expects"


# Names of text formats: a file so named that holds binary bytes is the wrong file. (Binary formats
# such as ASE's .traj are left to their parsers; ASE itself reads CIF as bytes.)
_TEXT_SUFFIXES = (".extxyz", ".xyz", ".cif", ".mcif", ".vasp", ".poscar", ".xml", ".dump", ".lammpstrj")
_TEXT_NAMES = ("POSCAR", "CONTCAR", "XDATCAR", "vasprun")


def named_as_text(path: str | Path) -> bool:
    """Whether the file's name (compression suffix aside) is that of a text format."""
    name = Path(path).name
    for suffix in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    return name.lower().endswith(_TEXT_SUFFIXES) or name.startswith(_TEXT_NAMES)


def file_fault(path: str | Path, text: bool | None = None) -> str | None:
    """Why ``path`` cannot be read, with the fix, or None when nothing is wrong with the bytes
    themselves (then the parser's own message is the story). ``text``: the format is a text one, so
    binary content is a fault (default: judged by the file's name)."""
    source = Path(path)
    text = named_as_text(source) if text is None else text
    try:
        return _compression_fault(source) or (_binary_fault(source) if text else None)
    except OSError as err:
        return f"it cannot be read ({err.strerror or type(err).__name__})"
