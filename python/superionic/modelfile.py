"""What a file is, decided from its bytes before torch opens it.

``torch.jit.load``, ``aoti_load_package`` and ``torch.load`` meet a wrong file with a C++ trace
("PytorchStreamReader failed reading zip archive ...") or, for pickles, by running what the file
asks. Reading the zip directory first tells apart an exported superionic model (TorchScript
``.pt``, AOTInductor ``.pt2``), a superionic training checkpoint, other torch files (a torch.save
file, a PyTorch Lightning checkpoint, a torch.package / nequip package, a torch.export program)
and everything else (empty, a directory, HDF5, text, a damaged zip ...), so the user is told what
the file is and what to do. ``cpp/model_file.cpp`` makes the same decision, with the same words,
for ``pair_style superionic``.

This module imports nothing from superionic: every layer that opens model or checkpoint files
(train, export, md, the CLI) uses it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

METADATA_NAME = "superionic.json"  # the same name as superionic.export.METADATA_NAME
EXPORT_HINT = "export one with `superionic export`"


class Kind(Enum):
    MISSING = "missing"
    DIRECTORY = "directory"
    EMPTY = "empty"
    NOT_ZIP = "not a zip archive"
    DAMAGED_ZIP = "damaged zip archive"
    TORCHSCRIPT = "TorchScript"
    AOTI = "AOTInductor package"
    EXPORTED_PROGRAM = "torch.export program"
    CHECKPOINT = "superionic checkpoint"
    LIGHTNING = "PyTorch Lightning checkpoint"
    TORCH_SAVE = "torch.save file"
    NEQUIP_PACKAGE = "nequip package"
    TORCH_PACKAGE = "torch.package archive"
    OTHER_ZIP = "zip archive"


EXPORTED = (Kind.TORCHSCRIPT, Kind.AOTI)
SUFFIX = {Kind.TORCHSCRIPT: ".pt", Kind.AOTI: ".pt2"}


class ModelFileError(ValueError):
    """A file given as a model or checkpoint is something else; the message says what and what to do."""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    kind: Kind
    description: str  # "it is a superionic training checkpoint", for "X is not ... (<description>)"
    metadata: bool = False  # TorchScript: superionic.json inside (AOTInductor: checked on load)
    names: tuple[str, ...] = field(default=(), repr=False)

    @property
    def advice(self) -> str:
        """The fix when an exported model was wanted."""
        if self.kind is Kind.MISSING:
            return "check the path"
        if self.kind is Kind.CHECKPOINT:
            return f"export it with `superionic export {self.path} -o model.pt`"
        return EXPORT_HINT


def _sniff(head: bytes) -> str:
    """A name for a file that is not a zip archive, from its first bytes."""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "it is an HDF5 file, not a zip archive"
    if head.startswith(b"\x1f\x8b"):
        return "it is a gzip file, not a zip archive"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "it is a bare pickle (legacy torch.save format), not a zip archive"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "it is a text file, not a zip archive"
        except UnicodeDecodeError as err:
            if err.start >= len(head) - 3:  # a multi-byte character cut by the 4 KiB window
                return "it is a text file, not a zip archive"
    return "it is not a zip archive"


def _stored(archive: zipfile.ZipFile, name: str, limit: int = 1 << 20) -> bytes:
    with archive.open(name) as handle:
        return handle.read(limit)


def identify(path: str | Path) -> ModelFile:
    """The kind of ``path`` from its bytes; never raises for a file that exists or not."""
    path = Path(path)
    if not path.exists():
        return ModelFile(path, Kind.MISSING, "no such file")
    if path.is_dir():
        return ModelFile(path, Kind.DIRECTORY, "it is a directory")
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as err:
        return ModelFile(path, Kind.MISSING, f"it cannot be read: {err.strerror}")
    if not head:
        return ModelFile(path, Kind.EMPTY, "it is empty")
    if not head.startswith(b"PK"):
        return ModelFile(path, Kind.NOT_ZIP, _sniff(head))
    try:
        with zipfile.ZipFile(path) as archive:
            names = tuple(archive.namelist())
            return _classify(path, archive, names)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return ModelFile(path, Kind.DAMAGED_ZIP, "it is a truncated or damaged zip archive")


def _classify(path: Path, archive: zipfile.ZipFile, names: tuple[str, ...]) -> ModelFile:
    # torch archives put every entry under one top directory whose name is arbitrary.
    def has(suffix: str) -> bool:
        return any(n.endswith(suffix) for n in names)

    def under(part: str) -> bool:
        return any(part in n for n in names)

    if has("/archive_format"):  # written by torch.export / AOTInductor packaging
        if under("/data/aotinductor/"):
            return ModelFile(path, Kind.AOTI, "it is an AOTInductor package", names=names)
        return ModelFile(
            path,
            Kind.EXPORTED_PROGRAM,
            "it is a torch.export program without AOTInductor code",
            names=names,
        )
    if has("/constants.pkl") and under("/code/"):
        if has(f"/extra/{METADATA_NAME}"):
            return ModelFile(path, Kind.TORCHSCRIPT, "it is a TorchScript model", True, names)
        if has("/extra/nequip_version") or has("/extra/r_max"):
            what = "it is a nequip/allegro TorchScript model, for pair_style nequip or allegro"
        else:
            what = f"it is a TorchScript model without {METADATA_NAME} inside"
        return ModelFile(path, Kind.TORCHSCRIPT, what, False, names)
    if has("/.data/extern_modules"):
        if has("/model/package_metadata.txt"):
            return ModelFile(
                path, Kind.NEQUIP_PACKAGE, "it is a nequip package (.nequip.zip), not compiled", names=names
            )
        return ModelFile(path, Kind.TORCH_PACKAGE, "it is a torch.package archive", names=names)
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if pickles:
        text = _stored(archive, pickles[0])
        # Keys of the pickled dict appear as plain strings; nothing is unpickled here.
        if b"data_hash" in text and b"optimizer" in text and b"ema" in text:
            return ModelFile(path, Kind.CHECKPOINT, "it is a superionic training checkpoint", names=names)
        if b"pytorch-lightning_version" in text:
            return ModelFile(
                path,
                Kind.LIGHTNING,
                "it is a PyTorch Lightning checkpoint, e.g. from nequip-train",
                names=names,
            )
        return ModelFile(path, Kind.TORCH_SAVE, "it is a torch.save file, not an exported model", names=names)
    return ModelFile(path, Kind.OTHER_ZIP, "it is a zip archive but no torch file", names=names)


def require_exported(path: str | Path, checkpoints_too: bool = False) -> ModelFile:
    """``path`` as an exported superionic model (or, with ``checkpoints_too``, a checkpoint).

    Raises ModelFileError with one line naming the file, what it is, and the fix.
    """
    found = identify(path)
    if found.kind is Kind.CHECKPOINT and checkpoints_too:
        return found
    if found.kind is Kind.MISSING:
        raise ModelFileError(f"{found.path}: {found.description}; check the path of the model")
    if found.kind not in EXPORTED or (found.kind is Kind.TORCHSCRIPT and not found.metadata):
        advice = found.advice
        if checkpoints_too and found.kind is not Kind.CHECKPOINT:
            advice = "give a checkpoint (.ckpt) or a model exported with `superionic export`"
        raise ModelFileError(f"{found.path} is not a superionic model ({found.description}); {advice}")
    wanted = SUFFIX[found.kind]
    if found.path.suffix != wanted:
        # pair_style superionic picks the loader by suffix, so the Python side asks for the same.
        raise ModelFileError(
            f"{found.path} holds {found.description.removeprefix('it is ')} but its name does not end "
            f"in {wanted}; rename it to {found.path.with_suffix(wanted).name}"
        )
    return found
