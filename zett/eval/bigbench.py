"""BIG-bench JSON multiple-choice tasks as zero-shot records (the ``bigbench`` asset, or any local task folder).

A BIG-bench JSON task is a folder with a ``task.json`` (``examples`` with ``input`` and ``target_scores``) and/or
subfolders, each a subtask with its own ``task.json``. A record is formatted as BIG-bench formats it zero-shot::

    prompt  = task_prefix + example_input_prefix + input
              [+ choice_prefix + choice_prefix.join(choices in a seeded permutation)]   # append_choices_to_input
              + example_output_prefix
    choices = the keys of target_scores, in file order (each scored as a continuation of the prompt)
    target  = index of the first choice with the highest score

Prefix defaults are BIG-bench's (``"\\nQ: "``, ``"\\nA: "``, ``"\\n  choice: "``, append_choices_to_input on);
leading whitespace of the whole prompt is dropped (zero-shot there is no preceding example to separate from).
Only multiple-choice examples (``target_scores`` with a single best choice and at least two choices) are kept.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DEFAULTS = {"task_prefix": "", "example_input_prefix": "\nQ: ", "example_output_prefix": "\nA: ",
            "choice_prefix": "\n  choice: ", "append_choices_to_input": True}


class BigBenchError(ValueError):
    """A task that cannot be read as a JSON multiple-choice task; the message names it and the fix."""


def tasks_root(root: str | Path | None = None) -> Path:
    """The folder holding one subfolder per task: ``root``, or the ``bigbench`` asset's ``tasks/`` (fetched if
    needed, 358 MB once)."""
    if root is not None:
        return Path(root).expanduser()
    from zett.assets import path

    return path("bigbench") / "tasks"


def _format(example: dict, spec: dict, seed: int) -> dict | None:
    scores = example.get("target_scores")
    if not isinstance(scores, dict) or len(scores) < 2:
        return None
    choices = [str(c) for c in scores]
    values = [float(v) for v in scores.values()]
    best = max(values)
    if values.count(best) != 1:  # ambiguous gold answer: not a single-answer multiple-choice example
        return None
    text = spec["example_input_prefix"] + str(example["input"])
    if spec["append_choices_to_input"]:
        listed = sorted(choices)
        random.Random(seed).shuffle(listed)  # BIG-bench lists choices in a seeded permutation, not gold-first
        text += spec["choice_prefix"] + spec["choice_prefix"].join(listed)
    prompt = (spec["task_prefix"] + text + spec["example_output_prefix"]).lstrip()
    return {"prompt": prompt, "choices": choices, "target": values.index(best)}


def _task_files(folder: Path) -> list[tuple[str | None, Path]]:
    """(subtask name or None, task.json) for a task folder: its own examples first, then subtasks by name."""
    out = []
    if (folder / "task.json").is_file():
        out.append((None, folder / "task.json"))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "task.json").is_file():
            out.append((sub.name, sub / "task.json"))
    return out


def load_task(name: str, root: str | Path | None = None, seed: int = 0) -> list[dict]:
    """Records ``{task, subtask, index, prompt, choices, target}`` of BIG-bench task ``name`` (``task`` or
    ``task/subtask``) under ``root`` (default: the ``bigbench`` asset)."""
    base = tasks_root(root)
    task, _, only = name.partition("/")
    folder = base / task
    if not folder.is_dir():
        known = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        hint = f" Known tasks include: {', '.join(known[:12])}..." if known else ""
        raise BigBenchError(f"BIG-bench task {task!r} not found under {base}.{hint}")
    files = [(s, f) for s, f in _task_files(folder) if not only or s == only]
    if not files:
        raise BigBenchError(f"BIG-bench task {name!r}: no task.json{' for subtask ' + only if only else ''} in {folder}")
    records = []
    for subtask, f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise BigBenchError(f"BIG-bench task {name!r}: {f} is not readable JSON ({e}); fix or replace that "
                                "task.json") from e
        if not isinstance(data, dict):
            raise BigBenchError(f"BIG-bench task {name!r}: {f} is not a JSON object with 'examples'; fix or replace "
                                "that task.json")
        spec = {k: data.get(k, v) for k, v in DEFAULTS.items()}
        for i, ex in enumerate(data.get("examples") or []):
            rec = _format(ex, spec, seed + i)
            if rec is not None:
                records.append({"task": task, "subtask": subtask, "index": i, **rec})
    if not records:
        raise BigBenchError(f"BIG-bench task {name!r} has no multiple-choice examples (target_scores with one best "
                            "choice); choose a JSON multiple-choice task such as social_iqa or winowhy")
    return records


def multiple_choice_tasks(root: str | Path | None = None, min_examples: int = 1) -> list[str]:
    """Names of the tasks under ``root`` with at least ``min_examples`` multiple-choice records."""
    out = []
    for folder in sorted(p for p in tasks_root(root).iterdir() if p.is_dir()):
        try:
            if len(load_task(folder.name, root)) >= min_examples:
                out.append(folder.name)
        except (BigBenchError, ValueError, KeyError):
            continue
    return out


__all__ = ["DEFAULTS", "BigBenchError", "load_task", "multiple_choice_tasks", "tasks_root"]
