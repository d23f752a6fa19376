"""Intrinsic metrics for language models under any tokenizer: bits per byte and bytes per token.

Bits per byte = (total negative log2-likelihood of the text's tokens) / (UTF-8 bytes of the text). It is comparable
across tokenizers because the denominator does not depend on the tokenization.

* BOS handling: every text is scored after one context token, the tokenizer's BOS (or EOS when it has no BOS, or
  none with ``prefix="none"``). With a context token every byte of the text is scored. With ``prefix="none"`` the
  first token has no prediction, so its bytes are left out of the denominator too.
* Long texts use a sliding window of ``max_length`` tokens advancing by ``stride`` tokens: each token is scored
  once, with at least ``max_length - stride`` tokens of context (except near the start).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

LN2 = math.log(2.0)


@dataclass
class LMScore:
    nll_bits: float  # total negative log2-likelihood of the scored tokens
    n_bytes: int  # UTF-8 bytes covered by the scored tokens
    n_tokens: int  # scored tokens
    n_text_bytes: int  # all UTF-8 bytes of the texts
    n_text_tokens: int  # all tokens of the texts (for compression)

    @property
    def bits_per_byte(self) -> float:
        return self.nll_bits / max(self.n_bytes, 1)

    @property
    def bytes_per_token(self) -> float:
        return self.n_text_bytes / max(self.n_text_tokens, 1)

    def __add__(self, other: LMScore) -> LMScore:
        return LMScore(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self):
        return (self.nll_bits, self.n_bytes, self.n_tokens, self.n_text_bytes, self.n_text_tokens)


def _prefix_id(tokenizer, prefix: str) -> int | None:
    if prefix == "none":
        return None
    if prefix == "bos":
        tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    elif prefix == "eos":
        tid = tokenizer.eos_token_id
    else:
        tid = tokenizer.convert_tokens_to_ids(prefix)
    if tid is None:
        raise ValueError(f"tokenizer has no token for prefix={prefix!r}; use prefix='none' or a token string")
    return tid


def resolve_prefix(tokenizer, prefix: str) -> str:
    """``prefix="bos"`` on a tokenizer with neither BOS nor EOS falls back to ``"none"`` (no context token)."""
    if prefix == "bos" and tokenizer.bos_token_id is None and tokenizer.eos_token_id is None:
        return "none"
    return prefix


def _windows(n: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first_scored) over a sequence of n ids: ids[start:end] is fed, targets from first_scored on."""
    out, scored_until = [], 1  # position 0 is context only
    start = 0
    while scored_until < n:
        end = min(start + max_length, n)
        out.append((start, end, scored_until))
        scored_until = end
        start = max(end - (max_length - stride), 0) if end < n else end
    return out


@dataclass
class Window:
    """One scoring window of one document: ``ids`` [T] are fed, targets at positions ``context..T-1`` are scored."""

    doc: int
    ids: torch.Tensor
    context: int


def document_windows(tokenizer, texts: Iterable[str], max_length: int = 1024, stride: int | None = None,
                     prefix: str = "bos") -> tuple[list[Window], list[int], list[int], list[int]]:
    """The scoring convention shared by ``zett-eval`` and training validation (see the module docstring).

    Returns (windows, scored bytes per document, UTF-8 bytes per document, tokens per document)."""
    stride = stride or max_length // 2
    if not 0 < stride <= max_length - 1:
        raise ValueError(f"need 0 < stride < max_length, got stride={stride}, max_length={max_length}: a window's "
                         "first token is context only, so stride=max_length-1 gives the least overlap (one token)")
    pid = _prefix_id(tokenizer, prefix)
    windows, scored_bytes, text_bytes, text_tokens = [], [], [], []
    for d, text in enumerate(texts):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=False)["input_ids"]
        raw = text.encode("utf-8")
        text_bytes.append(len(raw))
        text_tokens.append(len(enc))
        if not enc:
            scored_bytes.append(0)
            continue
        if pid is None:
            first = tokenizer.decode(enc[:1]).encode("utf-8")
            scored_bytes.append(len(raw) - min(len(first), len(raw)))
            ids = enc
        else:
            scored_bytes.append(len(raw))
            ids = [pid] + enc
        for start, end, first_scored in _windows(len(ids), max_length, stride):
            windows.append(Window(d, torch.tensor(ids[start:end]), first_scored - start))
    return windows, scored_bytes, text_bytes, text_tokens


def pad_windows(windows: list[Window], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> input_ids [B, T], attention_mask [B, T], score_mask [B, T] (True where the target at that position is
    scored; position 0 never is)."""
    width = max(len(w.ids) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    attn = torch.zeros(len(windows), width, dtype=torch.long)
    score = torch.zeros(len(windows), width, dtype=torch.bool)
    for i, w in enumerate(windows):
        ids[i, : len(w.ids)] = w.ids
        attn[i, : len(w.ids)] = 1
        score[i, w.context: len(w.ids)] = True
    return ids, attn, score


# -- byte classes ---------------------------------------------------------------------------------------------

BYTE_CLASSES = ("letters", "digits", "whitespace", "punctuation", "non_ascii", "special")
_WS = frozenset(b" \t\n\r\x0b\x0c")


def byte_class(b: int) -> int:
    """Index into ``BYTE_CLASSES`` of one byte: ASCII letters, digits, whitespace, other ASCII (punctuation and
    control characters), bytes >= 0x80 (any part of a non-ASCII character)."""
    if b >= 0x80:
        return 4
    if 48 <= b <= 57:
        return 1
    if b in _WS:
        return 2
    if 65 <= b <= 90 or 97 <= b <= 122:
        return 0
    return 3


def class_counts(tokenizer) -> torch.Tensor:
    """[V, 6] float: bytes of each class in each token (``zett.tokenizers.byte_vocab``); a special token (no bytes)
    counts one in ``special`` so that its bits are kept in the breakdown."""
    from zett.tokenizers import byte_vocab

    vocab = byte_vocab(tokenizer)
    out = torch.zeros(max(len(vocab), len(tokenizer)), len(BYTE_CLASSES))
    for i, b in enumerate(vocab):
        if not b:
            out[i, 5] = 1.0
            continue
        for x in b:
            out[i, byte_class(x)] += 1
    return out


@dataclass
class DocumentScores:
    """Per-document sums and the byte-class breakdown behind an ``LMScore``."""

    nll_bits: list[float]  # per document
    n_bytes: list[int]  # scored UTF-8 bytes per document
    class_bits: dict[str, float]  # bits of the scored tokens shared out by the classes of their bytes
    class_bytes: dict[str, float]  # token bytes of each class among the scored tokens (special: token count)
    digit_bytes: int  # digit bytes in the scored tokens
    digit_tokens: int  # scored tokens holding at least one digit


@torch.no_grad()
def score_documents(model, tokenizer, texts: Iterable[str], max_length: int = 1024, stride: int | None = None,
                    batch_size: int = 8, prefix: str = "bos", progress: bool = False,
                    classes: bool = True) -> tuple[LMScore, DocumentScores]:
    """``score_texts`` with per-document sums and the byte-class breakdown: a token's bits are shared among the
    classes of its bytes in proportion to their counts (so the class bits sum to the total)."""
    device = next(model.parameters()).device
    windows, scored_bytes, text_bytes, text_tokens = document_windows(tokenizer, list(texts), max_length, stride,
                                                                      prefix)
    counts = class_counts(tokenizer).to(device) if classes else None
    frac = counts / counts.sum(1, keepdim=True).clamp(min=1.0) if classes else None
    doc_bits = [0.0] * len(scored_bytes)
    cls_bits = torch.zeros(len(BYTE_CLASSES), dtype=torch.float64, device=device)
    cls_bytes = torch.zeros(len(BYTE_CLASSES), dtype=torch.float64, device=device)
    digit_bytes = digit_tokens = 0
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i].ids))  # batch similar lengths together
    n_scored = 0
    it = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="scoring", leave=False)
    for b in it:
        batch = [windows[i] for i in order[b: b + batch_size]]
        ids, attn, score_mask = pad_windows(batch)
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tgt = ids[:, 1:].to(device)
        nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).double() / LN2  # bits [B, T-1]
        m = score_mask[:, 1:].to(device)
        nll = nll * m
        for row, w in zip(nll.sum(1).tolist(), batch, strict=True):
            doc_bits[w.doc] += row
        n_scored += int(m.sum())
        if classes:
            t, bits = tgt[m], nll[m]
            cls_bits += (bits[:, None] * frac[t].double()).sum(0)
            cls_bytes += counts[t].double().sum(0)
            has_digit = counts[t, 1] > 0
            digit_bytes += int(counts[t, 1].sum())
            digit_tokens += int(has_digit.sum())
    total = sum(doc_bits)
    score = LMScore(total, sum(scored_bytes), n_scored, sum(text_bytes), sum(text_tokens))
    detail = DocumentScores(doc_bits, scored_bytes, dict(zip(BYTE_CLASSES, cls_bits.tolist(), strict=True)),
                            dict(zip(BYTE_CLASSES, cls_bytes.tolist(), strict=True)), digit_bytes, digit_tokens)
    return score, detail


def score_texts(model, tokenizer, texts: Iterable[str], max_length: int = 1024, stride: int | None = None,
                batch_size: int = 8, prefix: str = "bos", progress: bool = False) -> LMScore:
    """Score ``texts`` with a causal LM; see the module docstring for the conventions."""
    return score_documents(model, tokenizer, texts, max_length, stride, batch_size, prefix, progress,
                           classes=False)[0]


def bits_per_byte(model, tokenizer, texts: Iterable[str], **kwargs) -> float:
    """Bits per UTF-8 byte of ``texts`` under ``model`` with ``tokenizer`` (see ``score_texts``)."""
    return score_texts(model, tokenizer, texts, **kwargs).bits_per_byte
