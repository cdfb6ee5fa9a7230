"""A sprinter's .pt2 runs through the native kernel: its weights travel as a text entry beside the
AOTInductor code (export.py, weights_text), tied to it by a SHA-1 in the compiled metadata.

The kernel on the .pt2 equals the kernel on the same model's .pt and AOTInductor on the .pt2
(`backend torch`) to 1e-10 in float64 on 1 and 2 ranks, core repulsion included; a damaged,
missing or unknown-version weights entry is refused in one line; a .pt2 whose compiled metadata
names no weights (written before the entry existed) keeps running on AOTInductor and says so.
Each AOTInductor compile takes 1-2 minutes here, so the module compiles two files and reuses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from superionic.export import (
    AOTI_CACHE_ENV,
    WEIGHTS_DIGEST_KEY,
    WEIGHTS_NAME,
    export_model,
    read_weights_entry,
    weights_digest,
    weights_text,
)
from tests.lammps.singlepoint import single_point
from tests.lammps.test_native_kernel import assert_same, cell
from tests.unit.test_native_kernel import SPECIES, random_sprinter

pytestmark = pytest.mark.slow  # two AOTInductor compiles, ~1-2 min each on this machine

MODELS = ((2, 2), (4, 3))  # (l_max, species)


def seed(l_max: int, n_species: int) -> int:
    return 11 * l_max + n_species


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A fresh compile cache, so the files below are compiled here and not taken from ~/.cache."""
    path = tmp_path_factory.mktemp("aoti-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AOTI_CACHE_ENV, str(path))
        yield path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, cache_dir) -> dict[tuple[int, int], tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("kernel-pt2")
    out = {}
    for l_max, n_species in MODELS:
        model = random_sprinter(l_max, n_species, seed=seed(l_max, n_species))
        pt, pt2 = root / f"l{l_max}-s{n_species}.pt", root / f"l{l_max}-s{n_species}.pt2"
        export_model(model, pt)
        export_model(model, pt2)
        out[(l_max, n_species)] = (pt, pt2)
    return out


def run(tmp: Path, path: Path, n_species: int, nprocs: int, backend: str = "auto"):
    return single_point(
        tmp,
        cell(n_species),
        path,
        type_names=SPECIES[:n_species],
        nprocs=nprocs,
        pair_style=f"superionic backend {backend}",
    )


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize(("l_max", "n_species"), MODELS)
def test_pt2_kernel_equals_pt_kernel_and_aotinductor(tmp_path: Path, files, l_max, n_species, nprocs) -> None:
    pt, pt2 = files[(l_max, n_species)]
    kernel_pt2 = run(tmp_path / "k2", pt2, n_species, nprocs)
    assert "native sprinter kernel (float64" in kernel_pt2.output, "auto takes the kernel for a .pt2"
    kernel_pt = run(tmp_path / "k1", pt, n_species, nprocs)
    aoti = run(tmp_path / "aoti", pt2, n_species, nprocs, backend="torch")
    assert "torch threads per rank" in aoti.output
    # The core repulsion is active: some edges lie inside its onset (random_sprinter).
    # The same float64 bits reach the kernel from either file (repr/strtod round-trip), so the
    # two kernel runs agree to the bit; against AOTInductor only summation order differs (1e-10).
    assert_same(kernel_pt2, kernel_pt, tol=0.0)
    assert_same(kernel_pt2, aoti)


def test_weights_entry_is_the_module_state(files) -> None:
    """What the entry holds, read back independently of the C++ reader: every parameter and buffer."""
    l_max, n_species = MODELS[0]
    model = random_sprinter(l_max, n_species, seed=seed(l_max, n_species))
    text = read_weights_entry(files[MODELS[0]][1])
    assert text == weights_text(model)
    lines = text.splitlines()
    state = model.state_dict()
    names = [line.split()[1] for line in lines if line.startswith("tensor ")]
    assert names == sorted(state)
    for k, line in enumerate(lines):
        if line.startswith("tensor "):
            values = np.array([float(v) for v in lines[k + 1].split()])
            np.testing.assert_array_equal(values, state[line.split()[1]].double().reshape(-1).numpy())
    import torch

    compiled = torch._inductor.aoti_load_package(str(files[MODELS[0]][1])).get_metadata()
    assert compiled[WEIGHTS_DIGEST_KEY] == weights_digest(text)


def rewrite(source: Path, target: Path, text: str | None, drop_digest: bool = False) -> Path:
    """``source`` with its weights entry replaced by ``text`` (None: dropped), and with
    ``drop_digest`` the digest key removed from the package's metadata; the code is untouched."""
    import json

    from torch.export.pt2_archive._package import PT2ArchiveReader, PT2ArchiveWriter
    from torch.export.pt2_archive.constants import EXTRA_DIR

    with PT2ArchiveReader(str(source)) as reader, PT2ArchiveWriter(str(target)) as writer:
        for record in reader.get_file_names():
            if record == EXTRA_DIR + WEIGHTS_NAME or writer.has_record(record):
                continue
            data = reader.read_bytes(record)
            if drop_digest and record.endswith("_metadata.json"):  # AOTInductor's metadata files
                meta = json.loads(data)
                assert meta.pop(WEIGHTS_DIGEST_KEY)
                data = json.dumps(meta).encode()
            writer.write_bytes(record, data)
        if text is not None:
            writer.write_string(EXTRA_DIR + WEIGHTS_NAME, text)
    return target


def damaged(text: str) -> str:
    """One weight changed in its last digit: a different model that still parses."""
    lines = text.splitlines(keepends=True)
    k = next(i for i, line in enumerate(lines) if line.startswith("tensor radial_coeff")) + 1
    values = lines[k].split()
    values[0] = repr(float(values[0]) * (1 + 1e-15) + 1e-300)
    lines[k] = " ".join(values) + "\n"
    return "".join(lines)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (damaged, r"does not match the compiled model \(SHA-1 [0-9a-f]{12}, compiled metadata says"),
        (lambda t: t[: len(t) // 2], r"does not match the compiled model"),
        (
            lambda t: t.replace("format 1\n", "format 2\n", 1),
            r"has weights format 2 but this superionic reads format 1",
        ),
        (lambda t: "garbage\n" + t, r"does not start with 'superionic sprinter weights format N'"),
        (None, r"names sprinter weights in its compiled metadata but has no extra/superionic_weights.txt"),
    ],
    ids=["one-weight", "truncated", "unknown-version", "not-weights", "missing"],
)
def test_bad_weights_entry_is_one_line(tmp_path: Path, files, change, message) -> None:
    from superionic.md.runner import LammpsError

    pt2 = files[MODELS[0]][1]
    text = read_weights_entry(pt2)
    bad = rewrite(pt2, tmp_path / "bad.pt2", None if change is None else change(text))
    for backend in ("auto", "torch"):  # a damaged file is refused whichever path would run it
        with pytest.raises(LammpsError, match=message) as err:
            run(tmp_path / backend, bad, MODELS[0][1], 1, backend)
        line = str(err.value).strip()
        assert "\n" not in line and line.startswith("ERROR") and "bad.pt2" in line
        assert "export it again" in line or "export the model again" in line


def test_pt2_without_weights_runs_on_aotinductor(tmp_path: Path, files) -> None:
    """A .pt2 written before the entry existed: its metadata names no weights.

    Made from a current file by dropping the entry and the digest key from AOTInductor's metadata
    files, which is what an old export holds, without a third compile.
    """
    from superionic.md.runner import LammpsError

    pt, pt2 = files[MODELS[0]]
    old = rewrite(pt2, tmp_path / "old.pt2", None, drop_digest=True)
    aoti = run(tmp_path / "auto", old, MODELS[0][1], 2)
    assert (
        "runs through libtorch, not the native kernel: it was exported before .pt2 files carried"
        in aoti.output
    )
    assert "torch threads per rank" in aoti.output
    assert_same(aoti, run(tmp_path / "pt", pt, MODELS[0][1], 2))
    with pytest.raises(LammpsError, match=r"no native kernel for .*exported before \.pt2 files carried"):
        run(tmp_path / "native", old, MODELS[0][1], 1, "native")


def test_python_loads_the_pt2(files) -> None:
    """superionic.calculator.load_model (torch's loader) and the pybind11 core on the new file."""
    from superionic import _core
    from superionic.calculator import evaluate, load_model
    from superionic.data.graph import build_graph

    pt, pt2 = files[MODELS[1]]
    atoms = cell(MODELS[1][1])
    loaded = load_model(pt2)
    ref = evaluate(load_model(pt).forward, atoms, loaded.cutoff, loaded.species)
    got = evaluate(loaded.forward, atoms, loaded.cutoff, loaded.species)
    assert got.energy == pytest.approx(ref.energy, rel=1e-10)
    np.testing.assert_allclose(got.forces, ref.forces, rtol=0, atol=1e-10 * np.abs(ref.forces).max())

    core = _core.Model(str(pt2))
    assert core.has_native_kernel, core.native_unavailable_reason
    g = build_graph(atoms, loaded.cutoff, loaded.species)
    args = (g.edge_vec, g.edge_src, g.edge_dst, g.species, g.n_local)
    e_native, grad_native = core.compute_native(*args)
    e_aoti, grad_aoti = core.compute(*args)
    np.testing.assert_allclose(e_native, e_aoti, rtol=0, atol=1e-10)
    np.testing.assert_allclose(grad_native, grad_aoti, rtol=0, atol=1e-10 * np.abs(grad_aoti).max())


def no_compile(*args, **kwargs):
    raise AssertionError("AOTInductor compiled although the package is cached")


def test_export_again_reuses_the_compile(tmp_path: Path, files, cache_dir, monkeypatch) -> None:
    """Issue 12 point 3: a second export of the same model copies the cached package (no compile),
    still passes the export's check, and runs on the kernel like the first."""
    import torch

    l_max, n_species = MODELS[0]
    assert len(list(cache_dir.glob("*.pt2"))) == len(MODELS), "each fresh compile was stored"
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compile)
    again = tmp_path / "again.pt2"
    export_model(random_sprinter(l_max, n_species, seed=seed(l_max, n_species)), again)
    assert read_weights_entry(again) == read_weights_entry(files[MODELS[0]][1])
    assert_same(
        run(tmp_path / "again", again, n_species, 1),
        run(tmp_path / "first", files[MODELS[0]][1], n_species, 1),
        tol=0.0,
    )


def test_cache_key_follows_weights_and_metadata(files) -> None:
    """Another weight, another data hash or another device is another key (no compile needed); the
    same model gives the same key (test_export_again_reuses_the_compile)."""
    import torch
    from torch.export import Dim

    from superionic.export import METADATA_NAME, aoti_cache_key, metadata_for, probe_inputs

    def key(model, data_hash="none", device="cpu"):
        meta = metadata_for(model, data_hash=data_hash)
        inputs = probe_inputs(len(meta.species), meta.cutoff, torch.float64, "cpu")
        e, a = Dim("n_edges", min=0), Dim("n_atoms", min=0)
        program = torch.export.export(
            model.eval(), inputs, dynamic_shapes=({0: e}, {0: e}, {0: e}, {0: a}, None), strict=False
        )
        return [
            aoti_cache_key(program, {METADATA_NAME: meta.to_json()}, device),
            aoti_cache_key(program, {METADATA_NAME: metadata_for(model, data_hash="abc").to_json()}, device),
            aoti_cache_key(program, {METADATA_NAME: meta.to_json()}, "cuda:0"),
        ]

    l_max, n_species = MODELS[0]
    model = random_sprinter(l_max, n_species, seed=seed(l_max, n_species))
    base = key(model)
    assert len(set(base)) == 3
    with torch.no_grad():
        model.layers[0].bias[0, 0] += 1e-12
    assert not set(key(model)) & set(base)


def test_a_wrong_cached_package_is_compiled_again(tmp_path: Path, files, cache_dir, monkeypatch) -> None:
    """A cached file that does not reproduce the model (here: the other model's package under this
    key) fails the export's check and is not used: the export goes on to compile."""
    import torch

    packages = sorted(cache_dir.glob("*.pt2"))
    a, b = packages
    saved_a = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(saved_a)
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compile)
    l_max, n_species = MODELS[0]
    with pytest.raises(AssertionError, match="compiled although"):
        export_model(random_sprinter(l_max, n_species, seed=seed(l_max, n_species)), tmp_path / "x.pt2")
    assert not (tmp_path / "x.pt2").exists()
