"""`superionic train --committee K` and `superionic export committee.json`: members are ordinary runs
with shifted seeds and splits, the manifests say what is on disk, resume trains only what is
unfinished (to the bit), and exported members reproduce their checkpoints."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.io import read, write

from superionic.calculator import SuperionicCalculator, evaluate
from superionic.cli import main
from superionic.export import read_metadata
from superionic.md.committee import read_committee
from superionic.train.checkpoint import model_from_checkpoint
from superionic.train.committee import MemberProgress, member_config, train_committee
from superionic.train.config import ConfigError, load_config
from superionic.train.trainer import RunExistsError, Trainer

from .test_training import labelled_frames, write_config


def superionic(*argv: str) -> tuple[int, str, str]:
    """The CLI in this process (no interpreter start-up per call): exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


RMSE_LINE = re.compile(r"member (\d+): best epoch \d+: validation force RMSE (\S+) eV/Å")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reference.extxyz"
    write(path, labelled_frames(24))
    return path


@pytest.fixture(scope="module")
def committee(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> tuple[Path, str]:
    """A K = 2 committee trained by the CLI: (config file, what it printed)."""
    directory = tmp_path_factory.mktemp("committee")
    config = write_config(directory, dataset, epochs=2)  # 2 x 9 steps: enough to tell members apart
    status, out, err = superionic("train", str(config), "--committee", "2")
    assert status == 0, err
    return config, out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["ema"]


def test_members_differ_in_seed_split_and_weights(committee: tuple[Path, str]) -> None:
    config_path, printed = committee
    config = load_config(config_path)
    output = Path(config.output)
    manifest = json.loads((output / "committee.json").read_text())
    assert manifest["members"] == 2
    assert manifest["checkpoints"] == ["member_0/best.ckpt", "member_1/best.ckpt"]
    assert manifest["seeds"] == [0, 1] and manifest["split_seeds"] == [0, 1]
    for k in range(2):
        member = json.loads((output / f"member_{k}" / "config.json").read_text())
        assert member["training"]["seed"] == k and member["data"]["split_seed"] == k
        metrics = json.loads((output / f"member_{k}" / "metrics.json").read_text())
        assert manifest["val_metrics"][k] == metrics["val_metrics"]
    # The summary lists each member's validation force RMSE, as the manifest records it (4 decimals).
    shown = {int(k): float(v) for k, v in RMSE_LINE.findall(printed)}
    assert shown.keys() == {0, 1}
    for k in range(2):
        assert shown[k] == pytest.approx(manifest["val_force_rmse_eV_per_A"][k], abs=5e-5)

    # Different validation frames: the trainers of the two members hold out different structures.
    held_out = [
        {f.source for f in Trainer(member_config(config, k), resume=True).val_frames} for k in range(2)
    ]
    assert len(held_out[0]) == len(held_out[1]) == 6 and held_out[0] != held_out[1]
    # Different weights.
    w0, w1 = (_weights(output / f"member_{k}" / "best.ckpt") for k in range(2))
    assert any(not torch.equal(w0[name], w1[name]) for name in w0)


def test_member_is_the_ordinary_run_with_shifted_seeds(committee: tuple[Path, str], tmp_path: Path) -> None:
    config = load_config(committee[0])
    alone = member_config(config, 1)
    alone.output = str(tmp_path / "alone")
    Trainer(alone).run()
    mine = _weights(Path(config.output) / "member_1" / "last.ckpt")
    theirs = _weights(tmp_path / "alone" / "last.ckpt")
    for name, tensor in mine.items():
        assert torch.equal(tensor, theirs[name]), name


def test_resume_of_a_finished_committee_trains_nothing(committee: tuple[Path, str]) -> None:
    config_path, _ = committee
    output = Path(load_config(config_path).output)
    before = {p: p.stat().st_mtime_ns for p in output.glob("member_*/*.ckpt")}
    status, out, _ = superionic("train", str(config_path), "--committee", "2", "--resume")
    assert status == 0
    assert "trained 0 member(s) now" in out
    assert out.count("finished earlier, not retrained") == 2
    assert {p: p.stat().st_mtime_ns for p in output.glob("member_*/*.ckpt")} == before
    # Without --resume the committee is not overwritten.
    status, _, err = superionic("train", str(config_path), "--committee", "2")
    assert status == 2 and "already holds a committee" in err
    assert len(err.strip().splitlines()) == 1


def test_interrupted_member_is_resumed_to_the_bit(committee: tuple[Path, str], tmp_path: Path) -> None:
    straight = load_config(committee[0])
    config = load_config(committee[0])
    config.output = str(tmp_path / "run")
    calls = {"n": 0}

    def stop_in_member_1(p: MemberProgress) -> None:
        if p.member == 1:
            calls["n"] += 1
            if calls["n"] == 5:  # mid-epoch, after the checkpoint at step 3 (checkpoint_every 3)
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_committee(config, 2, on_progress=stop_in_member_1)
    assert not (tmp_path / "run" / "committee.json").exists()
    assert not (tmp_path / "run" / "member_1" / "metrics.json").exists()
    member_0 = (tmp_path / "run" / "member_0" / "last.ckpt").stat().st_mtime_ns

    result = train_committee(config, 2, resume=True)
    assert result.trained == [1]
    assert (tmp_path / "run" / "member_0" / "last.ckpt").stat().st_mtime_ns == member_0
    for k in range(2):
        mine = torch.load(result.checkpoints[k].parent / "last.ckpt", weights_only=False)
        theirs = torch.load(Path(straight.output) / f"member_{k}" / "last.ckpt", weights_only=False)
        assert mine["state"]["global_step"] == theirs["state"]["global_step"]
        for name, tensor in mine["ema"].items():
            assert torch.equal(tensor, theirs["ema"][name]), f"member {k} {name}"

    # A member whose checkpoint vanished (a kill before its first one) is trained from scratch.
    for stale in (tmp_path / "run" / "member_1").glob("*.ckpt"):
        stale.unlink()
    again = train_committee(config, 2, resume=True)
    assert again.trained == [1]
    mine = _weights(again.checkpoints[1].parent / "last.ckpt")
    theirs = _weights(Path(straight.output) / "member_1" / "last.ckpt")
    assert all(torch.equal(tensor, theirs[name]) for name, tensor in mine.items())


def test_bad_committee_requests_are_one_line(tmp_path: Path, dataset: Path) -> None:
    config = load_config(write_config(tmp_path, dataset))
    with pytest.raises(ConfigError, match=r"--committee 1: a committee needs at least 2 members"):
        train_committee(config, 1)
    with pytest.raises(RunExistsError, match=r"no committee member to resume"):
        train_committee(config, 2, resume=True)
    status, _, err = superionic("train", str(write_config(tmp_path, dataset)), "--committee", "0")
    assert status == 2 and "--committee 0: a committee needs at least 2 members" in err


def test_export_committee_members_equal_their_checkpoints(
    committee: tuple[Path, str], tmp_path: Path, dataset: Path, capsys
) -> None:
    output = Path(load_config(committee[0]).output)
    target = tmp_path / "exported"
    assert main(["export", str(output / "committee.json"), "-o", str(target)]) == 0
    printed = json.loads(capsys.readouterr().out)
    manifest = json.loads((target / "committee.json").read_text())
    assert manifest["members"] == ["member_0.pt", "member_1.pt"] and manifest["driving_member"] == 0
    assert printed["output"] == str(target / "committee.json")
    assert read_committee(target) == [(target / "member_0.pt").resolve(), (target / "member_1.pt").resolve()]
    frames = read(dataset, ":2")
    for k in range(2):
        model, _, payload = model_from_checkpoint(output / f"member_{k}" / "best.ckpt")
        meta = read_metadata(target / f"member_{k}.pt")
        assert meta.species == manifest["species"] == list(payload["species"])
        assert meta.cutoff == manifest["cutoff"] == 5.0 and meta.data_hash == payload["data_hash"]
        for atoms in frames:
            eager = evaluate(model, atoms, model.cutoff, payload["species"], dtype=torch.float64)
            atoms.calc = SuperionicCalculator(target / f"member_{k}.pt")
            # Same float64 graph through TorchScript: equal to round-off.
            np.testing.assert_allclose(atoms.get_forces(), eager.forces, atol=1e-10)


def test_export_committee_refuses_bad_manifests(committee: tuple[Path, str], tmp_path: Path, capsys) -> None:
    output = Path(load_config(committee[0]).output)
    body = json.loads((output / "committee.json").read_text())

    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({**body, "checkpoints": [str(output / "member_0/best.ckpt"), "gone.ckpt"]}))
    assert main(["export", str(missing), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "missing.json: checkpoints[1] = gone.ckpt does not exist" in err and len(err.splitlines()) == 1

    # Another cutoff (the committed format-1 fixture: 4 Å, same species) cannot join the committee.
    fixture = Path(__file__).parent / "fixtures" / "checkpoint_format1" / "run" / "last.ckpt"
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({**body, "checkpoints": [str(output / "member_0/best.ckpt"), str(fixture)]}))
    assert main(["export", str(mixed), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"mixed\.json: member 1 \(.*last\.ckpt\) has cutoff 4\.0 but member 0 .* has 5\.0", err)
    assert len(err.splitlines()) == 1
