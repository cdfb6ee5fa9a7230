"""Export contract models to TorchScript (.pt) and AOTInductor (.pt2) with metadata inside.

Both artefacts carry the same JSON metadata (format version, model kind, species, cutoff, receptive
field, dtype, units, training-data hash, versions, device). Every export is checked before it is
written: the artefact is loaded back and evaluated on a probe graph, and must reproduce the eager
model; a file that exists therefore works.

A sprinter's ``.pt2`` also carries its weights as text (``extra/superionic_weights.txt``, see
``weights_text``): AOTInductor compiles the weights into the shared library, where the native
kernel of ``pair_style superionic`` cannot read them. The SHA-1 of that entry is compiled into
the library's metadata (key ``superionic.weights_sha1``), so the loader can tell whether the two
belong together (docs/conventions.md, "Sprinter weights in .pt2 files").

AOTInductor compiles take a minute or more, so compiled packages are kept in a cache keyed by
everything they depend on (``aoti_cache_key``); exporting the same model again copies the package
and only repeats the check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from superionic import __version__
from superionic.models.contract import ContractModel
from superionic.models.e3nn_export import UntraceableModuleError

if TYPE_CHECKING:
    from superionic.train.config import TrainConfig

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
METADATA_NAME = "superionic.json"
SUFFIXES = (".pt", ".pt2")
WEIGHTS_NAME = "superionic_weights.txt"  # inside the archive's extra/ folder
WEIGHTS_FORMAT_VERSION = 1
WEIGHTS_HEADER = "superionic sprinter weights format"
WEIGHTS_DIGEST_KEY = "superionic.weights_sha1"  # in the compiled metadata, beside METADATA_NAME


# A pair closer than this fraction of its closest distance in the training data is somewhere the
# model never learned: the MD guard's floor (docs/guard.md).
FLOOR_FACTOR = 0.85


class ExportError(RuntimeError):
    """The model could not be exported, or the artefact does not reproduce the model."""


@dataclass(frozen=True)
class ModelMetadata:
    format_version: int
    model_kind: str
    species: list[str]
    cutoff: float
    receptive_field: float
    dtype: str
    units: str
    data_hash: str
    superionic_version: str
    torch_version: str
    device: str
    # Distance floors (docs/guard.md): per species pair, row-major S x S in species order, the
    # closest distance in the training data (the cutoff for a pair never seen within it) and the
    # floor, floor_factor times it. None in files exported before floors existed.
    floor_factor: float | None = None
    pair_closest_A: list[float] | None = None
    pair_floor_A: list[float] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> ModelMetadata:
        try:
            fields = json.loads(text)
            return cls(**fields)
        except (json.JSONDecodeError, TypeError) as err:
            raise ExportError(f"{source}: unreadable superionic metadata ({err})") from err

    def floors(self) -> dict[tuple[str, str], float] | None:
        """Floor of every unordered species pair, keyed in species order; None without floors."""
        return self._pairs(self.pair_floor_A)

    def closest(self) -> dict[tuple[str, str], float] | None:
        """Closest training-data distance of every unordered species pair; None without floors."""
        return self._pairs(self.pair_closest_A)

    def _pairs(self, flat: list[float] | None) -> dict[tuple[str, str], float] | None:
        if flat is None:
            return None
        n = len(self.species)
        return {
            (self.species[a], self.species[b]): float(flat[a * n + b]) for a in range(n) for b in range(a, n)
        }


def floor_fields(
    pair_closest: Sequence[Sequence[float | None]] | None, cutoff: float, factor: float = FLOOR_FACTOR
) -> dict[str, float | list[float] | None]:
    """The metadata's floor fields from a checkpoint's closest distances (None: an unseen pair)."""
    if pair_closest is None:
        return {"floor_factor": None, "pair_closest_A": None, "pair_floor_A": None}
    matrix = np.array([[cutoff if d is None else min(float(d), cutoff) for d in row] for row in pair_closest])
    matrix = np.minimum(matrix, matrix.T)
    closest = [float(d) for d in matrix.reshape(-1)]
    return {
        "floor_factor": factor,
        "pair_closest_A": closest,
        "pair_floor_A": [factor * d for d in closest],
    }


def checkpoint_export_args(payload: dict, config: TrainConfig) -> dict:
    """What export_model takes from a checkpoint besides the weights: the data hash and the closest
    distance of each species pair in the training data. A checkpoint written before the distances
    were recorded gets them from the data files its config names, if they are still there."""
    closest = payload.get("pair_closest_A")
    if closest is None:
        closest = _closest_from_config(config, list(payload["species"]))
    return {"data_hash": payload["data_hash"], "pair_closest": closest}


def _closest_from_config(config: TrainConfig, species: list[str]) -> list[list[float | None]] | None:
    from superionic.data.dataset import load_frames
    from superionic.train.initialise import closest_pair_distances, pair_closest_record

    files = [Path(p) for p in config.data.train + config.data.val]
    if not files or not all(f.is_file() for f in files):
        log.warning(
            "the checkpoint records no closest pair distances and its data files are not all there; "
            "the exported model has no distance floors, so the MD guard is off for it"
        )
        return None
    frames, _ = load_frames(files, config.model.cutoff, species)
    log.info("closest pair distances taken from the checkpoint's data files (%d frames)", len(frames))
    return pair_closest_record(closest_pair_distances(frames, len(species)))


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    dtypes = {t.dtype for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()}
    if len(dtypes) != 1:
        raise ExportError(f"model has floating tensors of dtypes {sorted(map(str, dtypes))}; use one.")
    return dtypes.pop()


def metadata_for(
    model: ContractModel,
    device: str = "cpu",
    data_hash: str = "none",
    pair_closest: Sequence[Sequence[float | None]] | None = None,
) -> ModelMetadata:
    dtype = model_dtype(model)
    if dtype not in (torch.float32, torch.float64):
        raise ExportError(f"model dtype {dtype} unsupported; use float32 or float64.")
    if model.receptive_field < model.cutoff:
        raise ExportError(
            f"receptive_field {model.receptive_field} < cutoff {model.cutoff}; it must be >= the cutoff."
        )
    return ModelMetadata(
        format_version=FORMAT_VERSION,
        model_kind=model.model_kind,
        species=list(model.species_names),
        cutoff=float(model.cutoff),
        receptive_field=float(model.receptive_field),
        dtype=str(dtype).removeprefix("torch."),
        units="metal",
        data_hash=data_hash,
        superionic_version=__version__,
        torch_version=torch.__version__,
        device=device,
        **floor_fields(pair_closest, float(model.cutoff)),  # type: ignore[arg-type]
    )


def probe_inputs(
    n_species: int, cutoff: float, dtype: torch.dtype, device: str, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A small random cluster with ghosts: 27 atoms on a jittered grid, the first 12 owned."""
    rng = np.random.default_rng(seed)
    spacing = 0.6 * cutoff
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = spacing * grid + rng.uniform(-0.1, 0.1, grid.shape) * spacing
    vec = pos[None, :, :] - pos[:, None, :]
    dist = np.linalg.norm(vec, axis=-1)
    src, dst = np.nonzero((dist < cutoff) & (dist > 0))
    as_tensor = {"device": device}
    return (
        torch.tensor(vec[src, dst], dtype=dtype, **as_tensor),
        torch.tensor(src, dtype=torch.int64, **as_tensor),
        torch.tensor(dst, dtype=torch.int64, **as_tensor),
        torch.tensor(rng.integers(0, n_species, len(pos)), dtype=torch.int64, **as_tensor),
        torch.tensor(12, dtype=torch.int64, **as_tensor),
    )


def _check_reproduces(eager: ContractModel, artefact, inputs, dtype: torch.dtype, what: str) -> None:
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    expected = eager(*inputs)
    got = artefact(*inputs)
    for name, ref, out in zip(("atom_energy", "edge_grad"), expected, got, strict=True):
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        err = float((out - ref).abs().max()) if ref.numel() else 0.0
        if not err <= tol * max(scale, 1.0):
            raise ExportError(
                f"{what} output {name} differs from the eager model by {err:.3g} (tolerance "
                f"{tol:g}); the model likely uses an operation torch.export mis-traces "
                "(see ContractModel's docstring)."
            )


def _write_atomic(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_torchscript(model: ContractModel, path: Path, meta: ModelMetadata) -> None:
    scripted = torch.jit.script(model.eval())
    dtype = model_dtype(model)

    def write(tmp: Path) -> None:
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_NAME: meta.to_json()})
        loaded = torch.jit.load(str(tmp), map_location=meta.device)
        inputs = probe_inputs(len(meta.species), meta.cutoff, dtype, meta.device)
        _check_reproduces(model, loaded, inputs, dtype, f"TorchScript export {path}")

    _write_atomic(path, write)


def weights_text(model: torch.nn.Module) -> str:
    """Every parameter and buffer of ``model`` as text the C++ loader reads without Python.

    Line 1 is ``WEIGHTS_HEADER <version>``; then, per tensor in name order, ``tensor <name> <ndim>
    <dims...>`` and a line of its values in row-major order as Python's shortest round-trip
    decimals (strtod reads them back to the same float64, so the kernel sees the bits the
    TorchScript path sees); last ``end <count>``. float32 values are written widened to float64,
    exactly as the .pt path widens them.
    """
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    lines = [f"{WEIGHTS_HEADER} {WEIGHTS_FORMAT_VERSION}"]
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise ExportError(f"tensor {name} is not a finite floating tensor; the sprinter has only those")
        flat = tensor.to("cpu", torch.float64).contiguous().reshape(-1).tolist()
        lines.append(f"tensor {name} {tensor.dim()} " + " ".join(str(n) for n in tensor.shape))
        lines.append(" ".join(repr(value) for value in flat))
    lines.append(f"end {len(tensors)}")
    return "\n".join(lines) + "\n"


def weights_digest(text: str) -> str:
    # A check against damage and mix-ups, not tampering: whoever can edit the entry can edit the
    # compiled code beside it.
    return hashlib.sha1(text.encode()).hexdigest()


def _add_extra_entry(package: Path, name: str, text: str) -> None:
    """Rewrite the AOTInductor archive ``package`` with ``extra/<name>`` added.

    PT2 archives keep extra files under extra/ (torch.export.pt2_archive), which both torch
    loaders skip; aoti_compile_and_package has no argument for them, so the records are copied.
    """
    from torch.export.pt2_archive._package import PT2ArchiveReader, PT2ArchiveWriter
    from torch.export.pt2_archive.constants import EXTRA_DIR

    staged = package.with_name(package.stem + ".extra.pt2")
    try:
        with PT2ArchiveReader(str(package)) as reader, PT2ArchiveWriter(str(staged)) as writer:
            for record in reader.get_file_names():
                if not writer.has_record(record):
                    writer.write_bytes(record, reader.read_bytes(record))
            writer.write_string(EXTRA_DIR + name, text)
        os.replace(staged, package)
    finally:
        if staged.exists():
            staged.unlink()


def read_weights_entry(path: str | os.PathLike) -> str | None:
    """The text of a .pt2's sprinter weights entry; None if the file has none."""
    from torch.export.pt2_archive._package import PT2ArchiveReader
    from torch.export.pt2_archive.constants import EXTRA_DIR

    with PT2ArchiveReader(str(path)) as reader:
        if EXTRA_DIR + WEIGHTS_NAME not in reader.get_file_names():
            return None
        return reader.read_string(EXTRA_DIR + WEIGHTS_NAME)


def export_aoti(model: ContractModel, path: Path, meta: ModelMetadata) -> None:
    from torch.export import Dim

    dtype = model_dtype(model)
    inputs = probe_inputs(len(meta.species), meta.cutoff, dtype, meta.device)
    edges = Dim("n_edges", min=0)
    atoms = Dim("n_atoms", min=0)
    # A model may hand torch.export an equivalent copy it can trace through the gradient (the
    # marathon rewrites e3nn's einsums, docs/marathon.md); the artefact is checked against `model`.
    prepare = getattr(model, "for_torch_export", None)
    try:
        traced = prepare() if prepare is not None else model
    except UntraceableModuleError as err:
        raise ExportError(f"{path}: cannot export to .pt2: {err}") from err
    program = torch.export.export(
        traced.eval(),
        inputs,
        dynamic_shapes=({0: edges}, {0: edges}, {0: edges}, {0: atoms}, None),
        strict=False,
    )

    compiled_metadata = {METADATA_NAME: meta.to_json()}
    weights = weights_text(model) if meta.model_kind == "sprinter" else None
    if weights is not None:
        compiled_metadata[WEIGHTS_DIGEST_KEY] = weights_digest(weights)

    cache = aoti_cache_dir()
    cached = cache / f"{aoti_cache_key(program, compiled_metadata, meta.device)}.pt2" if cache else None

    def check(tmp: Path) -> None:
        loaded = torch._inductor.aoti_load_package(str(tmp))
        probe = probe_inputs(len(meta.species), meta.cutoff, dtype, meta.device, seed=1)
        _check_reproduces(model, loaded, probe, dtype, f"AOTInductor export {path}")

    def write(tmp: Path) -> None:
        if cached is not None and cached.is_file():
            shutil.copyfile(cached, tmp)
            try:  # a cached file passes the same check as a fresh one, or is compiled again
                check(tmp)
                log.info("%s: AOTInductor compile reused from %s", path, cached)
                return
            except Exception:  # whatever is wrong with a cached file, a fresh compile replaces it
                log.warning(
                    "%s: cached AOTInductor package %s failed its check; compiling again", path, cached
                )
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp), inductor_configs={"aot_inductor.metadata": compiled_metadata}
        )
        if weights is not None:
            _add_extra_entry(tmp, WEIGHTS_NAME, weights)
            if read_weights_entry(tmp) != weights:
                raise ExportError(f"AOTInductor export {path}: the weights entry did not read back unchanged")
        check(tmp)
        if cached is not None:
            try:
                _write_atomic(cached, lambda staged: shutil.copyfile(tmp, staged))
            except OSError as err:  # a read-only or full cache costs the next run a compile, nothing else
                log.warning("%s: cannot store the compiled package in %s (%s)", path, cache, err)

    _write_atomic(path, write)


# Bumped whenever export_aoti changes what it compiles (configs, entries), so stale packages miss.
AOTI_CACHE_VERSION = 1
AOTI_CACHE_ENV = "SUPERIONIC_AOTI_CACHE"


def aoti_cache_dir() -> Path | None:
    """Where compiled .pt2 packages are kept: $SUPERIONIC_AOTI_CACHE (``off`` disables), else
    $XDG_CACHE_HOME/superionic/aoti, else ~/.cache/superionic/aoti."""
    value = os.environ.get(AOTI_CACHE_ENV, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "superionic" / "aoti"


def aoti_cache_key(program, compiled_metadata: dict[str, str], device: str) -> str:
    """SHA-256 of everything the compiled package depends on: the exported graph and its shape
    constraints, every weight's bytes, the metadata written into it, the torch and superionic
    versions, the device and the CPU's vector instruction set the C++ is compiled for."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    digest = hashlib.sha256()
    parts = [
        str(AOTI_CACHE_VERSION),
        torch.__version__,
        __version__,
        device,
        str(pick_vec_isa()),
        json.dumps(compiled_metadata, sort_keys=True),
        program.graph_module.code,
        str(program.graph_signature),
        str(program.range_constraints),
    ]
    for part in parts:
        digest.update(part.encode() + b"\0")
    tensors = {**program.state_dict, **program.constants}
    for name in sorted(tensors):
        value = tensors[name]
        if isinstance(value, torch.Tensor):
            flat = value.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"{name} {value.dtype} {tuple(value.shape)}\0".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        else:
            digest.update(f"{name} {value!r}\0".encode())
    return digest.hexdigest()


def export_model(
    model: ContractModel,
    path: str | os.PathLike,
    device: str = "cpu",
    data_hash: str = "none",
    pair_closest: Sequence[Sequence[float | None]] | None = None,
) -> ModelMetadata:
    """Write ``model`` to ``path``; the suffix picks the format (.pt TorchScript, .pt2 AOTInductor).
    ``pair_closest`` (from checkpoint_export_args) gives the file its distance floors."""
    target = Path(path)
    if target.suffix not in SUFFIXES:
        raise ExportError(f"{target}: unknown model suffix '{target.suffix}'; use .pt or .pt2.")
    meta = metadata_for(model.to(device), device=device, data_hash=data_hash, pair_closest=pair_closest)
    if target.suffix == ".pt":
        export_torchscript(model, target, meta)
    else:
        export_aoti(model, target, meta)
    return meta


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The metadata stored inside an exported model."""
    from superionic.modelfile import require_exported

    source = Path(path)
    require_exported(source)  # what the file is, before torch reads it: one line, not a C++ trace
    try:
        if source.suffix == ".pt":
            extra = {METADATA_NAME: ""}
            torch.jit.load(str(source), map_location="cpu", _extra_files=extra)
            text = extra[METADATA_NAME]
        else:
            text = torch._inductor.aoti_load_package(str(source)).get_metadata().get(METADATA_NAME, "")
    except (RuntimeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"{source}: a damaged model file, torch cannot load it ({first}); export it again"
        ) from err
    if not text:
        raise ExportError(f"{source}: no {METADATA_NAME} inside; re-export it with superionic export.")
    return ModelMetadata.from_json(text, str(source))


def file_hash(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


COMMITTEE_NAME = "committee.json"
# Fields every member of a committee must share: pair_style superionic evaluates them on one
# neighbour list and one type map.
SHARED_FIELDS = ("species", "cutoff", "receptive_field", "dtype")


def export_committee(
    manifest: str | os.PathLike, out_dir: str | os.PathLike, suffix: str = ".pt", device: str = "cpu"
) -> Path:
    """Export every member of a trained committee to ``out_dir/member_k<suffix>``; write the manifest.

    Each member goes through export_model (metadata inside each file, checked against the eager
    model). ``out_dir/committee.json`` names the files relative to ``out_dir``, so the directory can
    be moved as a whole; member 0 drives the dynamics in LAMMPS.
    """
    from superionic.train.checkpoint import CheckpointError, model_from_checkpoint
    from superionic.train.committee import read_manifest

    if suffix not in SUFFIXES:
        raise ExportError(f"--format {suffix.lstrip('.')}: unknown model format; use pt or pt2")
    try:
        trained = read_manifest(manifest)
    except CheckpointError as err:
        raise ExportError(str(err)) from err
    target = Path(out_dir)
    names: list[str] = []
    metas: list[ModelMetadata] = []
    for k, checkpoint in enumerate(trained.checkpoints):
        model, config, payload = model_from_checkpoint(checkpoint)
        provenance = checkpoint_export_args(payload, config)
        meta = metadata_for(model, device=device, **provenance)
        if metas:
            for name in SHARED_FIELDS:
                if getattr(meta, name) != getattr(metas[0], name):
                    raise ExportError(
                        f"{trained.manifest}: member {k} ({checkpoint}) has {name} {getattr(meta, name)} but "
                        f"member 0 ({trained.checkpoints[0]}) has {getattr(metas[0], name)}; a committee's "
                        "members must share it: train them from one config (superionic train --committee)"
                    )
        names.append(f"member_{k}{suffix}")
        metas.append(export_model(model, target / names[-1], device=device, **provenance))
    first = metas[0]
    body = {
        "members": names,
        "species": first.species,
        "cutoff": first.cutoff,
        "receptive_field": first.receptive_field,
        "dtype": first.dtype,
        "driving_member": 0,
        "data_hash": first.data_hash,
        "val_force_rmse_eV_per_A": [m.get("force_rmse_eV_per_A") for m in trained.val_metrics],
        "trained_manifest": str(trained.manifest.resolve()),
    }
    exported = target / COMMITTEE_NAME
    _write_atomic(exported, lambda tmp: tmp.write_text(json.dumps(body, indent=2)))
    return exported
