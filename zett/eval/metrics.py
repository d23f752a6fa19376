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


@torch.no_grad()
def score_texts(model, tokenizer, texts: Iterable[str], max_length: int = 1024, stride: int | None = None,
                batch_size: int = 8, prefix: str = "bos", progress: bool = False) -> LMScore:
    """Score ``texts`` with a causal LM; see the module docstring for the conventions."""
    stride = stride or max_length // 2
    if not 0 < stride <= max_length - 1:
        raise ValueError(f"need 0 < stride < max_length, got stride={stride}, max_length={max_length}: a window's "
                         "first token is context only, so stride=max_length-1 gives the least overlap (one token)")
    device = next(model.parameters()).device
    pid = _prefix_id(tokenizer, prefix)
    jobs = []  # (ids window tensor, number of context positions before the first scored target)
    n_text_bytes = n_text_tokens = n_bytes = 0
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=False)["input_ids"]
        raw = text.encode("utf-8")
        n_text_bytes += len(raw)
        n_text_tokens += len(enc)
        if not enc:
            continue
        if pid is None:
            first = tokenizer.decode(enc[:1]).encode("utf-8")
            n_bytes += len(raw) - min(len(first), len(raw))
            ids = enc
        else:
            n_bytes += len(raw)
            ids = [pid] + enc
        for start, end, first_scored in _windows(len(ids), max_length, stride):
            jobs.append((torch.tensor(ids[start:end]), first_scored - start))
    jobs.sort(key=lambda j: -len(j[0]))  # batch similar lengths together
    total = 0.0
    n_scored = 0
    it = range(0, len(jobs), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="scoring", leave=False)
    for b in it:
        batch = jobs[b: b + batch_size]
        width = max(len(j[0]) for j in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        attn = torch.zeros(len(batch), width, dtype=torch.long)
        score_mask = torch.zeros(len(batch), width, dtype=torch.bool)
        for i, (w, ctx) in enumerate(batch):
            ids[i, : len(w)] = w
            attn[i, : len(w)] = 1
            score_mask[i, ctx: len(w)] = True  # targets at positions ctx..len-1
        logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tgt = ids[:, 1:].to(device)
        nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        m = score_mask[:, 1:].to(device)
        total += nll[m].sum().item()
        n_scored += int(m.sum())
    return LMScore(total / LN2, n_bytes, n_scored, n_text_bytes, n_text_tokens)


def bits_per_byte(model, tokenizer, texts: Iterable[str], **kwargs) -> float:
    """Bits per UTF-8 byte of ``texts`` under ``model`` with ``tokenizer`` (see ``score_texts``)."""
    return score_texts(model, tokenizer, texts, **kwargs).bits_per_byte
