"""The training-tokenizer sampler of ZeTT (zett-method.md §2.2-2.3): a fresh UnigramLM tokenizer per batch.

State: a queue of the substring counts of the last ``queue_size`` batches (``substrings.substring_counts``). Each
``sample(texts)`` pushes the batch's counts (popping the oldest when full), turns the queue's total into
probabilities ``p(s) = count(s) / sum``, adds per-tokenizer Gaussian noise of std ``~ LogNormal(ln noise_mean,
noise_std)``, and keeps the top pieces by ``log(p + noise)`` next to the 256 byte chars (score ``log min p``), the
135 whitespace-run pieces (score 0) and the base tokenizer's special tokens (at their base ids where they fit).
The result is a byte-level ``tokenizers`` Unigram model (scores = log-probabilities) behind GPT-2 pretokenization:
lossless, never UNK.

Counts live in numpy arrays over a growing substring index, so pushing, popping, noising and the top-k are
vectorised; only the per-distinct-pretoken substring enumeration is Python.

Differences from the original, on purpose: weights are true byte lengths (the original used the UTF-8 length of
the byte-level spelling, which counts bytes >= 128 twice); the prefix space is optional (``add_prefix_space``,
default off, because the base model itself sees no prefix space and it breaks lossless decoding after specials).
"""

from __future__ import annotations

import math
from collections import deque
from operator import itemgetter

import numpy as np

from zett.tokenizers.bytes import byte_to_char, bytes_to_byte_level
from zett.tokenizers.load import load_tokenizer
from zett.tokenizers.specials import ROLE_PRIORITY
from zett.tokenizers.substrings import is_candidate, pretoken_counts, substring_counts, whitespace_pieces

_NEG = -100000.0  # score of pieces whose noised probability is not positive (as in the original)
_MEMO_LIMIT = 500_000  # memoised pretokens before the memo is reset


class TokenizerSampler:
    """Samples training tokenizers from the recent text stream.

    vocab_size: mean size; with ``vocab_size_std > 0`` each tokenizer draws ``round(N(mean, std))`` clipped to
    ``[vocab_size_min, vocab_size_max]`` (defaults: 256 + 135 + specials + 1 and ``vocab_size``).
    noise_mean/noise_std: per-tokenizer noise std ``~ LogNormal(ln noise_mean, noise_std)``; ``noise_mean=0``
    turns the noise off. ``seed`` makes the whole stream reproducible; ``state_dict``/``load_state_dict`` resume it.
    reuse: a sampled tokenizer serves this many consecutive ``sample(push=True)`` calls (default 1: a fresh one
    every call, the original behaviour); every call still pushes its batch's counts into the queue. A resumed
    sampler draws a fresh tokenizer at its first call.
    """

    def __init__(self, base_tokenizer, vocab_size: int = 32768, vocab_size_std: float = 0.0,
                 vocab_size_min: int | None = None, vocab_size_max: int | None = None, queue_size: int = 16,
                 stride: int = 4, max_piece_len: int = 15, noise_mean: float = 1e-5, noise_std: float = 4.0,
                 add_prefix_space: bool = False, seed: int = 0, reuse: int = 1):
        self.base = load_tokenizer(base_tokenizer)
        self.specials = self._base_specials()
        self.fixed = [*byte_to_char(), *whitespace_pieces(max_piece_len)]
        floor = len(self.fixed) + len(self.specials) + 1
        self.vocab_size = int(vocab_size)
        self.vocab_size_std = float(vocab_size_std)
        self.vocab_size_min = int(vocab_size_min) if vocab_size_min is not None else floor
        self.vocab_size_max = int(vocab_size_max) if vocab_size_max is not None else self.vocab_size
        if min(self.vocab_size, self.vocab_size_min) < floor or self.vocab_size_min > self.vocab_size_max:
            raise ValueError(
                f"TokenizerSampler: vocab_size={vocab_size} (min {self.vocab_size_min}, max {self.vocab_size_max}) "
                f"is too small or inconsistent: a sampled vocabulary holds 256 bytes, {len(self.fixed) - 256} "
                f"whitespace pieces and {len(self.specials)} special tokens, so use at least {floor}")
        if queue_size < 1 or stride < 1 or max_piece_len < 1:
            raise ValueError(f"TokenizerSampler: queue_size, stride and max_piece_len must be >= 1, got "
                             f"{queue_size}, {stride}, {max_piece_len}")
        self.queue_size, self.stride, self.max_piece_len = int(queue_size), int(stride), int(max_piece_len)
        self.noise_mean, self.noise_std = float(noise_mean), float(noise_std)
        self.add_prefix_space = bool(add_prefix_space)
        self.seed = seed
        if int(reuse) < 1:
            raise ValueError(f"TokenizerSampler: reuse must be >= 1 (batches per sampled tokenizer), got {reuse}")
        self.reuse = int(reuse)
        self._current, self._uses = None, 0  # the tokenizer being reused and how many calls it served
        self.n_batches = 0  # sample(push=True) calls over the sampler's life, resumes included
        self._rng = np.random.default_rng(seed)
        self._reset_index()
        self._queue: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._static = self._static_tokenizer_parts()
        self._template = None  # the first sampled tokenizer's wrapper, cloned for the next ones

    # -- base special tokens -----------------------------------------------------------------------------------

    def _base_specials(self) -> list[tuple[int, str]]:
        """(base id, content) of every base special token, named roles first."""
        tok = self.base
        ids = {i: t.content for i, t in tok.backend_tokenizer.get_added_tokens_decoder().items() if t.special}
        for role in ROLE_PRIORITY:
            i = getattr(tok, f"{role}_token_id", None)
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids[i] = tok.convert_ids_to_tokens(i)
        return sorted(ids.items())

    # -- substring index and queue -----------------------------------------------------------------------------

    def _reset_index(self, strings: list[str] | None = None):
        self._strings: list[str] = list(strings or [])
        self._index: dict[str, int] = {s: i for i, s in enumerate(self._strings)}
        n = len(self._strings)
        cap = max(1 << 16, 2 * n)
        self._total = np.zeros(cap, dtype=np.int64)
        self._candidate = np.zeros(cap, dtype=bool)
        self._candidate[:n] = [is_candidate(s) for s in self._strings]
        # the same strings as an object array, so a whole vocabulary is gathered with one fancy index
        self._string_arr = np.empty(cap, dtype=object)
        self._string_arr[:n] = self._strings
        self._n_flagged = n
        self._memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # pretoken -> (ids, weights); ids change here

    def _grow(self, n: int):
        if n <= len(self._total):
            return
        cap = max(n, 2 * len(self._total))
        self._total = np.concatenate([self._total, np.zeros(cap - len(self._total), dtype=np.int64)])
        self._candidate = np.concatenate([self._candidate, np.zeros(cap - len(self._candidate), dtype=bool)])
        self._string_arr = np.concatenate([self._string_arr, np.empty(cap - len(self._string_arr), dtype=object)])

    def _pretoken_entry(self, pretoken: str) -> tuple[np.ndarray, np.ndarray]:
        """Index ids and byte-length weights of one pretoken's substrings (new substrings join the index in
        enumeration order, exactly as ``substrings.substring_counts`` enumerates them)."""
        s = bytes_to_byte_level(pretoken.encode())
        n, stride, max_len = len(s), self.stride, self.max_piece_len
        subs = [s[i:j] for i in range(0, n, stride) for j in range(i + 1, min(i + max_len, n) + 1)]
        index = self._index
        ids = [index.get(x, -1) for x in subs]
        if -1 in ids:
            for k, x in enumerate(subs):
                if ids[k] < 0:
                    i = index.get(x)
                    if i is None:
                        i = index[x] = len(self._strings)
                        self._strings.append(x)
                    ids[k] = i
            self._flag_new_strings()
        weights = [len(x) for x in subs]
        return np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.int64)

    def _flag_new_strings(self):
        n = len(self._strings)
        self._grow(n)
        self._candidate[self._n_flagged:n] = [is_candidate(x) for x in self._strings[self._n_flagged:n]]
        self._string_arr[self._n_flagged:n] = self._strings[self._n_flagged:n]
        self._n_flagged = n

    def _batch_entry(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """(unique index ids, summed weights) of one batch. Pretoken entries are memoised: common words cost one
        dict lookup per batch instead of re-enumerating their substrings."""
        pretokens = pretoken_counts(texts, " " if self.add_prefix_space else "")
        if not pretokens:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        memo = self._memo
        if len(memo) > _MEMO_LIMIT:
            memo.clear()
        entries = []
        for p in pretokens:
            e = memo.get(p)
            if e is None:
                e = memo[p] = self._pretoken_entry(p)
            entries.append(e)
        sizes = np.fromiter((len(e[0]) for e in entries), dtype=np.int64, count=len(entries))
        ids = np.concatenate([e[0] for e in entries])
        weights = np.concatenate([e[1] for e in entries]) * np.repeat(
            np.fromiter(pretokens.values(), dtype=np.int64, count=len(entries)), sizes)
        unique, inverse = np.unique(ids, return_inverse=True)
        # float64 sums of integers stay exact far beyond any batch's total weight
        summed = np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.int64)
        return unique, summed

    def _add(self, entry, sign: int):
        ids, weights = entry
        self._total[ids] += sign * weights  # ids are unique within one batch entry

    def _push(self, entry):
        self._queue.append(entry)
        self._add(entry, +1)
        while len(self._queue) > self.queue_size:
            self._add(self._queue.popleft(), -1)
        self._maybe_compact()

    def _maybe_compact(self):
        """Drop substrings no queued batch holds once they dominate the index (deterministic: depends only on the
        stream, so a resumed sampler compacts at the same points)."""
        n = len(self._strings)
        if n < 1_000_000:
            return
        live = np.flatnonzero(self._total[:n] > 0)
        if n < 4 * len(live):
            return
        remap = np.full(n, -1, dtype=np.int64)
        remap[live] = np.arange(len(live))
        queue = [(remap[ids], w) for ids, w in self._queue]
        total = self._total[live].copy()
        self._reset_index([self._strings[i] for i in live])
        self._total[:len(live)] = total
        self._queue = deque(queue)

    def queue_totals(self) -> dict[str, int]:
        """Substring -> its summed weight over the queued batches (for inspection and tests; not fast)."""
        n = len(self._strings)
        return {self._strings[i]: int(self._total[i]) for i in np.flatnonzero(self._total[:n] > 0)}

    def counts(self, texts) -> dict[str, int]:
        """This sampler's substring statistics of one batch."""
        return substring_counts(texts, self.stride, self.max_piece_len, " " if self.add_prefix_space else "")

    def warm_up(self, texts, chunk_size: int = 128):
        """Fill the queue from ``texts`` in chunks of ``chunk_size`` without sampling (ZeTT: 2,048 texts)."""
        texts = list(texts)
        if not texts:
            raise ValueError("TokenizerSampler.warm_up: got no texts; pass the first training texts")
        for k in range(0, len(texts), chunk_size):
            self._push(self._batch_entry(texts[k:k + chunk_size]))

    # -- sampling ----------------------------------------------------------------------------------------------

    def _draw_vocab_size(self) -> int:
        if self.vocab_size_std <= 0:
            n = self.vocab_size
        else:
            n = int(round(self._rng.normal(self.vocab_size, self.vocab_size_std)))
        return int(min(max(n, self.vocab_size_min), self.vocab_size_max))

    def _pieces(self, n_total: int) -> list[tuple[str, float]]:
        """(piece, score) for the non-special part of a vocabulary of ``n_total`` tokens."""
        n = len(self._strings)
        total = self._total[:n]
        live = np.flatnonzero(total > 0)
        score_sum = float(total[live].sum())
        min_log_prob = math.log(total[live].min() / score_sum)
        noise = 0.0
        if self.noise_mean > 0:
            noise = float(self._rng.lognormal(math.log(self.noise_mean), self.noise_std))
        cand = live[self._candidate[live]]
        p = total[cand] / score_sum
        if noise > 0:
            p = p + self._rng.normal(0.0, noise, size=len(cand))
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), _NEG)
        special_text = {s for _, s in self.specials}
        k = n_total - len(self.fixed) - len(self.specials)
        take = min(len(cand), k + len(special_text))
        if take <= 0:
            top = np.empty(0, dtype=np.int64)
        else:
            top = np.argpartition(-score, take - 1)[:take] if take < len(cand) else np.arange(len(cand))
            top = top[np.lexsort((cand[top], -score[top]))]  # by score, ties by index: deterministic
        # Vectorised over the whole vocabulary: gather the strings with one object-array index and drop the
        # base specials' texts by their index ids (a special text that was never counted cannot be chosen).
        special_idx = [self._index[t] for t in special_text if t in self._index]
        ids = cand[top]
        if special_idx:
            keep = ~np.isin(ids, np.asarray(special_idx, dtype=np.int64))
            ids, top = ids[keep], top[keep]
        ids, top = ids[:k], top[:k]
        chosen = list(zip(self._string_arr[ids].tolist(), score[top].tolist(), strict=True))
        # Too little text for k distinct pieces (tiny corpora only): pad with placeholders the byte-level
        # pretokenizer can never produce (punctuation and letters never share a pretoken), so the size holds.
        chosen += [(f"<|zett_unused_{j}|>", _NEG) for j in range(k - len(chosen))]
        fixed = [(c, min_log_prob) for c in self.fixed[:256]] + [(w, 0.0) for w in self.fixed[256:]]
        return fixed + chosen

    def _static_tokenizer_parts(self):
        from tokenizers import decoders, normalizers, pre_tokenizers

        decoder = decoders.ByteLevel()
        normalizer = None
        if self.add_prefix_space:
            normalizer = normalizers.Prepend(" ")
            decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(content=" ", left=1, right=0)])
        return normalizer, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), decoder

    def _build(self, pieces: list[tuple[str, float]], n_total: int):
        from tokenizers import AddedToken, Tokenizer, models

        floor = min(map(itemgetter(1), pieces), default=_NEG)
        taken, late = {}, []
        for i, s in self.specials:  # base specials keep their base ids where they fit
            if i < n_total:
                taken[i] = s
            else:
                late.append(s)
        j = n_total - 1
        for s in late:  # the rest take the last free slots
            while j in taken:
                j -= 1
            taken[j] = s
            j -= 1
        # The pieces fill the free slots in order: insert the specials into the piece list at their slots in
        # ascending order (a handful of inserts instead of a Python loop over the whole vocabulary).
        vocab = list(pieces[:n_total - len(taken)])
        if len(vocab) + len(taken) != n_total:
            raise ValueError(f"TokenizerSampler: {len(pieces)} pieces and {len(taken)} specials cannot fill "
                             f"{n_total} slots")
        for j in sorted(taken):
            vocab.insert(j, (taken[j], floor))
        backend = Tokenizer(models.Unigram(vocab, unk_id=None, byte_fallback=False))
        normalizer, pre_tokenizer, decoder = self._static
        if normalizer is not None:
            backend.normalizer = normalizer
        backend.pre_tokenizer = pre_tokenizer
        backend.decoder = decoder
        backend.add_special_tokens([AddedToken(s, special=True, normalized=False) for _, s in self.specials])
        if not late and self.base.backend_tokenizer.post_processor is not None:
            backend.post_processor = self.base.backend_tokenizer.post_processor
        if late:
            tok = self._wrap(backend)
        else:
            if self._template is None:
                self._template = self._wrap(backend)
            tok = self._clone(backend)
        # The vocabulary by id in byte-level spelling (None at the specials): surface_forms(byte_level=...) reads
        # it instead of converting the whole vocabulary back out of the tokenizer.
        byte_level = list(map(itemgetter(0), vocab))
        for j in taken:
            byte_level[j] = None
        tok.zett_byte_level = byte_level
        return tok

    def _wrap(self, backend):
        from transformers import PreTrainedTokenizerFast

        names = {f"{r}_token": getattr(self.base, f"{r}_token") for r in ROLE_PRIORITY
                 if getattr(self.base, f"{r}_token", None)}
        return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False, **names)

    def _clone(self, backend):
        """A wrapper around ``backend`` copied from the first one built. ``PreTrainedTokenizerFast(...)`` deep-copies
        its backend (a JSON round trip of the whole vocabulary, ~0.15 s at 32k); every sampled tokenizer has the
        same special tokens at the same ids, so the wrapper state is shared safely (containers are copied)."""
        template = self._template
        tok = object.__new__(type(template))
        tok.__dict__.update({k: (v.copy() if isinstance(v, dict | list | set) else v)
                             for k, v in template.__dict__.items()})
        tok._tokenizer = backend
        return tok

    def sample(self, texts, push: bool = True):
        """A fresh tokenizer (``PreTrainedTokenizerFast``) from the queue plus ``texts``' counts.

        ``push=True`` (training) keeps the batch in the queue, dropping the oldest beyond ``queue_size``;
        ``push=False`` (validation) uses the batch for this tokenizer only and leaves the queue as it was.
        """
        texts = list(texts)
        self.n_batches += bool(push)
        if push and self._current is not None and self._uses < self.reuse:
            self._push(self._batch_entry(texts))
            self._uses += 1
            return self._current
        if not texts and not self._queue:
            raise ValueError("TokenizerSampler.sample: no texts and an empty queue; pass the batch's texts")
        entry = self._batch_entry(texts)
        if push:
            self._push(entry)
        else:
            dropped = self._queue[0] if len(self._queue) >= self.queue_size else None
            self._add(entry, +1)
            if dropped is not None:
                self._add(dropped, -1)
        try:
            n_total = self._draw_vocab_size()
            pieces = self._pieces(n_total)
        finally:
            if not push:
                self._add(entry, -1)
                if dropped is not None:
                    self._add(dropped, +1)
        tok = self._build(pieces, n_total)
        if push and self.reuse > 1:
            self._current, self._uses = tok, 1
        return tok

    # -- checkpointing -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """What resuming needs: the queued batches' substring counts, the random state and the batch count, as
        strings, ints and integer tensors, so it loads with ``torch.load(weights_only=True)`` (Lightning
        checkpoints).

        Compact: only the substrings some queued batch holds are kept (in index order; the index itself also
        remembers substrings that left the queue, up to ~1M of them), queue ids and weights are int32 where they
        fit. A loaded sampler has the same queue totals, random state and batch count, so it draws the same next
        tokenizer; later draws can differ from an uninterrupted sampler's in the order of substrings that come
        back after leaving the queue (that order only decides which noise value a piece gets).
        """
        import torch

        n = len(self._strings)
        live = np.zeros(n, dtype=bool)
        for ids, _ in self._queue:
            live[ids] = True
        keep = np.flatnonzero(live)
        remap = np.full(n, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        strings = self._string_arr[keep].tolist()

        def small(x: np.ndarray) -> torch.Tensor:
            fits = x.size == 0 or (int(x.max()) < 2**31 and int(x.min()) >= -2**31)
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.int32 if fits else np.int64))

        return {
            "version": 2,
            "strings": strings,
            "queue": [(small(remap[ids]), small(w)) for ids, w in self._queue],
            "rng": self._rng.bit_generator.state,
            "n_batches": self.n_batches,
            "config": {"vocab_size": self.vocab_size, "queue_size": self.queue_size, "stride": self.stride,
                       "max_piece_len": self.max_piece_len, "add_prefix_space": self.add_prefix_space},
        }

    def load_state_dict(self, state: dict):
        mine = self.state_dict()["config"]
        if state.get("config", {}).get("stride") != mine["stride"] or \
                state["config"].get("max_piece_len") != mine["max_piece_len"] or \
                state["config"].get("add_prefix_space") != mine["add_prefix_space"]:
            raise ValueError(f"TokenizerSampler.load_state_dict: the state was saved with {state.get('config')}, "
                             f"this sampler counts with {mine}; build the sampler with the saved settings")
        self._reset_index(state["strings"])
        self._queue = deque()
        for ids, w in state["queue"]:
            entry = (np.asarray(ids, dtype=np.int64).copy(), np.asarray(w, dtype=np.int64).copy())
            self._queue.append(entry)
            self._add(entry, +1)
        self._rng.bit_generator.state = state["rng"]
        self._current, self._uses = None, 0
        self.n_batches = int(state.get("n_batches", 0))
