"""Evaluation of zero-shot tokenizer transfer: bits per byte, compression, tables and plots.

    from zett.eval import score_texts, eval_texts
    s = score_texts(model, tokenizer, eval_texts("botchan", max_bytes=20000))   # s.bits_per_byte, s.bytes_per_token
    records = run_evaluation("smollm2-135m", ["gpt2"], ["botchan"], ["original", "fvt"])
    write_results(records, "out/eval")                                          # json, csv, markdown, png

``zett-eval`` (``zett.cli.eval``) wraps ``run_evaluation`` + ``write_results`` with a Hydra config.
"""

from zett.eval.metrics import LMScore, bits_per_byte, score_texts
from zett.eval.report import add_deltas, markdown_table, plot, report_markdown, write_results
from zett.eval.runner import EvalConfigError, FocusSettings, ScoreSettings, run_evaluation
from zett.eval.texts import EvalDataError, eval_texts, join_lines, take_bytes

__all__ = [
    "EvalConfigError", "EvalDataError", "FocusSettings", "LMScore", "ScoreSettings", "add_deltas", "bits_per_byte",
    "eval_texts", "join_lines", "markdown_table", "plot", "report_markdown", "run_evaluation", "score_texts",
    "take_bytes", "write_results",
]
