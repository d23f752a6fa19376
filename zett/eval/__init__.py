"""Evaluation of zero-shot tokenizer transfer: bits per byte, compression, tables and plots."""
