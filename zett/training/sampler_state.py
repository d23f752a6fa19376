"""Sampler states in a checkpoint: one shared substring table for all (rank, worker, domain) samplers.

Each ``TokenizerSampler.state_dict`` holds the substrings its queued batches count (``strings``) and the queue as
ids into them. Samplers of one domain count largely the same substrings, so storing every sampler's list would
repeat most strings once per worker x rank. ``pack`` stores the union once (``strings``) and, per sampler, its
list as int32 ids into the union (``string_ids``, in the sampler's own order, which ``load_state_dict`` keeps);
``unpack`` gives back the per-sampler states, equal to the packed ones. Loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import torch

FORMAT = 2  # 1: {key: state} with each state's own strings (still read)


def pack(states: dict[str, dict]) -> dict:
    """{key: sampler state} -> {"format": 2, "strings": [union], "samplers": {key: state without strings, with
    string_ids [n] int32}}; no states -> {} (nothing to restore)."""
    if not states:
        return {}
    table: list[str] = []
    index: dict[str, int] = {}
    samplers = {}
    for key in sorted(states):
        state = dict(states[key])
        ids = []
        for s in state.pop("strings"):
            i = index.get(s)
            if i is None:
                i = index[s] = len(table)
                table.append(s)
            ids.append(i)
        state["string_ids"] = torch.tensor(ids, dtype=torch.int32)
        samplers[key] = state
    return {"format": FORMAT, "strings": table, "samplers": samplers}


def unpack(packed: dict) -> dict[str, dict]:
    """Inverse of ``pack``; a format-1 mapping {key: state} is returned as it is."""
    if packed.get("format") != FORMAT:
        return dict(packed)
    table = packed["strings"]
    out = {}
    for key, state in packed["samplers"].items():
        state = dict(state)
        state["strings"] = [table[i] for i in state.pop("string_ids").tolist()]
        out[key] = state
    return out
