"""zett.training.sampler_state: one substring table for all samplers, unpacked to the states that were packed."""

from __future__ import annotations

import io

import torch

from zett.training.sampler_state import pack, unpack


def _state(strings, n_batches):
    return {"version": 2, "strings": strings, "queue": [(torch.arange(len(strings), dtype=torch.int32),
                                                          torch.ones(len(strings), dtype=torch.int32))],
            "rng": {"state": {"state": 1, "inc": 3}}, "n_batches": n_batches, "config": {"stride": 4}}


def test_pack_stores_each_string_once_and_unpacks_to_the_same_states():
    states = {"0:0:en": _state(["the", "a", "cat"], 3), "0:1:en": _state(["a", "dog", "the"], 5),
              "0:0:code": _state(["def", "a"], 2)}
    packed = pack(states)
    assert sorted(packed["strings"]) == ["a", "cat", "def", "dog", "the"]  # 5 distinct of 8
    buffer = io.BytesIO()
    torch.save(packed, buffer)  # a Lightning checkpoint loads it with weights_only=True
    buffer.seek(0)
    back = unpack(torch.load(buffer, weights_only=True))
    assert back.keys() == states.keys()
    for key, state in states.items():
        assert back[key]["strings"] == state["strings"]  # each sampler's own order
        assert back[key]["n_batches"] == state["n_batches"] and back[key]["rng"] == state["rng"]
        assert all(torch.equal(a, b) for pair_a, pair_b in zip(back[key]["queue"], state["queue"], strict=True)
                   for a, b in zip(pair_a, pair_b, strict=True))


def test_an_old_checkpoints_states_and_no_states_pass_through():
    old = {"0:0:en": _state(["x", "y"], 1)}
    assert unpack(old) == old
    assert pack({}) == {} and unpack({}) == {}
