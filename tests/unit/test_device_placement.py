"""The rank -> GPU rule of ``pair_style superionic`` (cpp/device_placement.cpp), without GPUs.

The C++ function is called through ``superionic._core`` and compared with the rule as the README
states it, written out here independently, over every combination of node sizes up to 9 ranks and
8 GPUs; the error cases are checked for messages that name the counts and the fix.
"""

from __future__ import annotations

import pytest
from superionic._core import PlacementError, place_rank


def documented_rule(device: str, rank: int, size: int, gpus: int, per_node: int, allow: bool) -> str | None:
    """README, 'Using the pair style': the device a rank gets, or None where it is an error."""
    if device == "cpu" or (device == "auto" and gpus == 0):
        return "cpu"
    if gpus == 0 or per_node > gpus:
        return None
    in_use = per_node or gpus
    if size > in_use and not allow:
        return None
    return f"cuda:{rank % in_use}"


@pytest.mark.parametrize("device", ["cpu", "auto", "cuda"])
def test_every_small_node_follows_the_documented_rule(device: str) -> None:
    checked = 0
    for size in range(1, 10):
        for gpus in range(9):
            for per_node in range(gpus + 2):
                for allow in (False, True):
                    for rank in range(size):
                        expected = documented_rule(device, rank, size, gpus, per_node, allow)
                        if expected is None:
                            with pytest.raises(PlacementError):
                                place_rank(device, rank, size, gpus, per_node, allow)
                        else:
                            assert place_rank(device, rank, size, gpus, per_node, allow) == expected
                        checked += 1
    assert checked == 2 * sum(size * sum(g + 2 for g in range(9)) for size in range(1, 10))


def test_four_ranks_on_four_gpus_take_one_each() -> None:
    assert [place_rank("cuda", r, 4, 4) for r in range(4)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    # Two nodes of 4 ranks: the node-local rank decides, so both nodes use all four devices.
    assert [place_rank("auto", r, 4, 4) for r in range(4)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_gpus_per_node_uses_only_the_first_devices() -> None:
    assert [place_rank("cuda", r, 2, 8, gpus_per_node=2) for r in range(2)] == ["cuda:0", "cuda:1"]
    shared = [place_rank("cuda", r, 4, 8, gpus_per_node=2, allow_oversubscribe=True) for r in range(4)]
    assert shared == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]


def test_more_ranks_than_gpus_is_an_error_naming_the_fix() -> None:
    with pytest.raises(PlacementError) as err:
        place_rank("cuda", 0, 8, 4)
    message = str(err.value)
    assert "8 ranks on this node would share 4 GPU(s)" in message
    assert "at most 4 ranks per node" in message and "allow_oversubscribe yes" in message
    assert "\n" not in message


def test_explicit_device_overrides_the_rule() -> None:
    # A launcher that gives every rank its own CUDA_VISIBLE_DEVICES: each sees one GPU.
    assert [place_rank("cuda:0", r, 4, 1) for r in range(4)] == ["cuda:0"] * 4
    assert place_rank("cuda:3", 1, 2, 4) == "cuda:3"
    with pytest.raises(PlacementError, match=r"cuda:4 requested but this rank sees only 4 GPU\(s\)"):
        place_rank("cuda:4", 0, 1, 4)


def test_no_gpu() -> None:
    assert place_rank("auto", 1, 2, 0) == "cpu"
    with pytest.raises(PlacementError, match=r"libtorch sees no GPU.*use device cpu or auto"):
        place_rank("cuda", 0, 1, 0)
    with pytest.raises(PlacementError, match="gpus_per_node 2 but only 1 GPU"):
        place_rank("cuda", 0, 1, 1, gpus_per_node=2)


MALFORMED = ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", "cuda:01234567", "cpu:0", ""]


@pytest.mark.parametrize("device", MALFORMED)
def test_malformed_device_names(device: str) -> None:
    with pytest.raises(PlacementError, match=r"device must be cpu, cuda or auto, or cuda:N for GPU N"):
        place_rank(device, 0, 1, 4)


def test_invalid_counts() -> None:
    with pytest.raises(PlacementError, match="gpus_per_node must be >= 0"):
        place_rank("cuda", 0, 1, 4, gpus_per_node=-1)
    with pytest.raises(PlacementError, match="node-local rank 2 of 2"):
        place_rank("cuda", 2, 2, 4)
