"""Distillation losses (zett.training.distill): hand computations, optimum at student == teacher, gradient flow."""

import math

import pytest
import torch

from zett.training.distill import (
    ALMLoss,
    alm_loss,
    binary_distance,
    chunk_last_token,
    gradmag_weights,
    latent_loss,
    log1mexp,
    merge_by_space,
    one_to_one_positions,
    sequence_logprobs,
    shared_kl,
    token_logprobs,
)


def _matrix(chunks, n_chunks):
    """chunk index per token (list, -1 = none) -> [1, T, C] bool."""
    a = torch.zeros(1, len(chunks), n_chunks, dtype=torch.bool)
    for t, c in enumerate(chunks):
        if c >= 0:
            a[0, t, c] = True
    return a


# teacher tokens: chunk 0 = {0}, chunk 1 = {1, 2}, chunk 2 = {3};  student: chunk 0 = {0}, 1 = {1}, 2 = {2, 3}
A_T = _matrix([0, 1, 1, 2], 3)
A_S = _matrix([0, 1, 2, 2], 3)
MASK = torch.ones(1, 3, dtype=torch.bool)
LP_T = torch.tensor([[0.0, -1.0, -2.0, -0.5]])
LP_S = torch.tensor([[0.0, -2.5, -0.25, -0.5]])


def _bce(la, lb):
    a = math.exp(la)
    return -(a * lb + (1 - a) * math.log(1 - math.exp(lb)))


def _entropy(la):
    a = math.exp(la)
    return -(a * la + (1 - a) * math.log(1 - a))


def test_log1mexp_is_accurate_at_both_ends():
    x = torch.tensor([-1e-12, -1e-6, -0.1, -0.69, -0.7, -5.0, -50.0], dtype=torch.float64)
    expected = torch.tensor([math.log(-math.expm1(float(v))) for v in x], dtype=torch.float64)
    assert torch.allclose(log1mexp(x), expected, rtol=1e-12)
    assert torch.isfinite(log1mexp(torch.tensor([-1e-30]))).all()


def test_binary_distances_by_hand():
    la, lb = torch.tensor([-0.3]), torch.tensor([-1.2])
    assert binary_distance(la, lb, "bce").item() == pytest.approx(_bce(-0.3, -1.2), rel=1e-5)
    assert binary_distance(la, lb, "binary_kl").item() == pytest.approx(_bce(-0.3, -1.2) - _entropy(-0.3),
                                                                         rel=1e-5)
    assert binary_distance(la, lb, "abs").item() == pytest.approx(0.9)
    # at a == b: BCE is the teacher's binary entropy and the KL form is zero
    assert binary_distance(la, la, "bce").item() == pytest.approx(_entropy(-0.3), rel=1e-6)
    assert binary_distance(la, la, "binary_kl").item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="ALM distance"):
        binary_distance(la, lb, "l2")


@pytest.mark.parametrize("temperature", [1.0, 100.0])
def test_alm_value_equals_hand_computation(temperature):
    eps = 1e-6
    loss, stats = alm_loss(LP_T, LP_S, A_T, A_S, MASK, temperature=temperature, kind="bce")
    # chunk 0 holds position 0 (never predicted) and is skipped; chunk 1: -3 vs -2.5, chunk 2: -0.5 vs -0.75
    hand = [_bce(lt / temperature - eps, ls / temperature - eps) for lt, ls in ((-3.0, -2.5), (-0.5, -0.75))]
    assert loss.item() == pytest.approx(sum(hand) / 2, rel=1e-4)
    assert stats["chunks"].item() == 2 and stats["abs"].item() == pytest.approx((0.5 + 0.25) / 2)
    kl, _ = alm_loss(LP_T, LP_S, A_T, A_S, MASK, temperature=temperature)
    hand_kl = [_bce(lt / temperature - eps, ls / temperature - eps) - _entropy(lt / temperature - eps)
               for lt, ls in ((-3.0, -2.5), (-0.5, -0.75))]
    assert kl.item() == pytest.approx(sum(hand_kl) / 2, rel=1e-3)


def test_alm_append_space_and_merge_by_space_prob_by_hand():
    # space log-probs at every position; chunk ends: teacher 0, 2, 3 / student 0, 1, 3
    space_t = torch.log(torch.tensor([[0.9, 0.5, 0.05, 0.8]]))
    space_s = torch.log(torch.tensor([[0.9, 0.4, 0.5, 0.7]]))
    loss, _ = alm_loss(LP_T, LP_S, A_T, A_S, MASK, space_t, space_s, temperature=1.0, append_space=True,
                       kind="abs")
    hand = (abs((-3 + math.log(0.05)) - (-2.5 + math.log(0.4))) + abs((-0.5 + math.log(0.8))
                                                                       - (-0.75 + math.log(0.7)))) / 2
    assert loss.item() == pytest.approx(hand, rel=1e-5)
    # merge: chunk 1 ends where the teacher's space prob is 0.05 < 0.1, so chunks 1 and 2 merge into one
    # group ending at chunk 2 (space 0.8); chunk 0 is its own group but holds position 0 -> dropped.
    loss, stats = alm_loss(LP_T, LP_S, A_T, A_S, MASK, space_t, space_s, temperature=1.0,
                           merge_by_space_prob=True, append_space=True, threshold=0.1, kind="abs")
    assert stats["chunks"].item() == 1
    merged_t, merged_s = -3.5 + math.log(0.8), -3.25 + math.log(0.7)
    assert loss.item() == pytest.approx(abs(merged_t - merged_s), rel=1e-5)
    with pytest.raises(ValueError, match="space log-probs"):
        alm_loss(LP_T, LP_S, A_T, A_S, MASK, append_space=True)


def test_merge_by_space_drops_open_tail_and_groups_with_invalid_members():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    end_space = torch.log(torch.tensor([[0.5, 0.01, 0.5, 0.5, 0.01]]))
    valid = torch.tensor([[True, True, True, False, True]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    (merged,), kept, ends = merge_by_space([values], end_space, valid, mask, 0.1)
    # groups: {0}, {1, 2}, {3} (invalid), open tail {4} dropped
    assert merged[0, :3].tolist() == [1.0, 5.0, 4.0]
    assert kept[0].tolist() == [True, True, False, False, False]
    assert ends[0].tolist() == [True, False, True, True, False]


def test_alm_is_zero_with_zero_gradient_when_student_is_teacher():
    lp = torch.tensor([[0.0, -1.0, -2.0, -0.5]], requires_grad=True)
    space = torch.log(torch.tensor([[0.9, 0.5, 0.05, 0.8]]))
    for kw in ({}, {"append_space": True}, {"merge_by_space_prob": True, "append_space": True}):
        loss, _ = alm_loss(LP_T, lp, A_T, A_T, MASK, space, space, **kw)
        assert loss.item() == pytest.approx(0.0, abs=1e-7)
        (grad,) = torch.autograd.grad(loss, lp)
        assert grad.abs().max().item() < 1e-6
    # away from the optimum the gradient pushes the student's chunk likelihood toward the teacher's
    lp_s = LP_S.clone().requires_grad_(True)
    loss, _ = alm_loss(LP_T, lp_s, A_T, A_S, MASK)
    loss.backward()
    assert lp_s.grad[0, 1] > 0  # chunk 1: student -2.5 > teacher -3 -> descent lowers it
    assert lp_s.grad[0, 2] < 0 and lp_s.grad[0, 3] < 0  # chunk 2: student -0.75 < teacher -0.5 -> raise it


def test_chunk_positions_and_one_to_one_pairs():
    assert chunk_last_token(A_T).tolist() == [[0, 2, 3]]
    assert chunk_last_token(_matrix([0, -1], 2)).tolist() == [[0, -1]]
    b, pt, ps = one_to_one_positions(A_T, A_S, MASK)
    assert b.tolist() == [] and pt.tolist() == []
    a_t, a_s = _matrix([0, 1, 2, 2], 3), _matrix([0, 1, 1, 2], 3)
    a_t2, a_s2 = _matrix([0, 1, 2], 3), _matrix([0, 1, 2, 2], 3)
    b, pt, ps = one_to_one_positions(a_t2, a_s2, MASK)
    assert (b.tolist(), pt.tolist(), ps.tolist()) == ([0], [1], [1])
    assert one_to_one_positions(a_t, a_s, MASK)[0].numel() == 0


def test_shared_kl_by_hand_and_zero_on_equal_coarsening():
    logits_t = torch.tensor([[1.0, 0.0, -1.0, 2.0]])  # vocab a b c d
    logits_s = torch.tensor([[0.5, 3.0, 0.0]])  # vocab x b a   (shared: a, b)
    p = torch.softmax(logits_t, -1)[0]
    q = torch.softmax(logits_s, -1)[0]
    pt = [p[0], p[1], 1 - p[0] - p[1]]
    qs = [q[2], q[1], 1 - q[2] - q[1]]
    hand = sum(float(a) * math.log(float(a) / float(b)) for a, b in zip(pt, qs, strict=True))
    kl = shared_kl(logits_t, logits_s, torch.tensor([0, 1]), torch.tensor([2, 1]))
    assert kl.item() == pytest.approx(hand, rel=1e-5)
    # same probabilities on the shared events (the rest split differently) -> 0
    lt = torch.log(torch.tensor([[0.2, 0.3, 0.1, 0.4]]))
    ls = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    assert shared_kl(lt, ls, torch.tensor([0, 1]), torch.tensor([2, 1])).item() == pytest.approx(0.0, abs=1e-6)


def test_latent_loss_by_hand():
    h_t = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 2.0]]])
    h_s = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [0.0, 0.0], [1.0, 2.0]]])
    # chunk ends: teacher 0, 2, 3; student 0, 1, 3
    ht = torch.tensor([[1.0, 2.0], [5.0, 6.0], [0.0, 2.0]])
    hs = torch.tensor([[1.0, 2.0], [3.0, 0.0], [1.0, 2.0]])
    scale = ht.pow(2).mean(0)
    hand = ((hs - ht).pow(2) / scale).mean()
    got = latent_loss(h_t, h_s, A_T, A_S, MASK, eps=0.0)
    assert got.item() == pytest.approx(hand.item(), rel=1e-6)
    assert latent_loss(h_t, h_t, A_T, A_T, MASK).item() == 0.0


def test_gradmag_weights_equalise_last_layer_gradients():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    other = torch.tensor([3.0], requires_grad=True)
    losses = [10 * (p ** 2).sum(), (p * 3).sum() + other.sum(), other.sum()]  # the last never touches p
    w = gradmag_weights(losses, [p])
    g1, g2 = 20 * p.detach(), torch.full((2,), 3.0)
    n1, n2 = g1.norm().item(), g2.norm().item()
    assert w.tolist() == pytest.approx([1 / n1 / (1 / n1 + 1 / n2), 1 / n2 / (1 / n1 + 1 / n2), 0.0], rel=1e-5)
    assert (w[0] * g1).norm().item() == pytest.approx((w[1] * g2).norm().item(), rel=1e-5)
    assert not w.requires_grad and p.grad is None


def test_token_logprobs_match_log_softmax_and_gradients_survive_chunking():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(7, 4, generator=gen, requires_grad=True)
    w = torch.randn(10, 4, generator=gen, requires_grad=True)
    bias = torch.randn(10, generator=gen)
    targets = torch.tensor([1, 2, 3, -100, 9, 0, 5])
    space = torch.zeros(10, dtype=torch.bool)
    space[[2, 5, 7]] = True
    lp, sp = token_logprobs(h, w, targets, bias, space, logit_fn=lambda x: 30 * torch.tanh(x / 30),
                            max_chunk_elements=20)
    logits = 30 * torch.tanh((h @ w.T + bias) / 30)
    ref = torch.log_softmax(logits, -1)
    ref_lp = ref.gather(1, targets.clamp(min=0)[:, None])[:, 0] * (targets != -100)
    ref_sp = torch.logsumexp(ref[:, space], -1)
    assert torch.allclose(lp, ref_lp, atol=1e-5) and torch.allclose(sp, ref_sp, atol=1e-5)
    g1 = torch.autograd.grad((lp * 1.3 + sp).sum(), (h, w))
    g2 = torch.autograd.grad((ref_lp * 1.3 + ref_sp).sum(), (h, w))
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_sequence_logprobs_layout():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 3, 4, generator=gen)
    w = torch.randn(6, 4, generator=gen)
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    lp, sp = sequence_logprobs(hidden, ids, mask, w, space_mask=torch.tensor([1, 0, 0, 0, 0, 1]).bool())
    ref = torch.log_softmax(hidden @ w.T, -1)
    assert lp[0].tolist() == pytest.approx([0.0, ref[0, 0, 2].item(), ref[0, 1, 3].item()], abs=1e-6)
    assert lp[1].tolist() == pytest.approx([0.0, ref[1, 0, 5].item(), 0.0], abs=1e-6)
    assert sp.shape == (2, 3)
    assert sp[1, 2].item() == pytest.approx(torch.logsumexp(ref[1, 2, [0, 5]], 0).item(), abs=1e-6)


def test_alm_term_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown ALM mode"):
        ALMLoss(mode="space_merge+append_space")
    with pytest.raises(ValueError, match="temperature"):
        ALMLoss(temperature=0)
    term = ALMLoss(mode="merge_by_space_prob+append_space")
    assert term.merge and term.append and term.temperature == 100.0


def test_alm_warns_once_when_it_compares_nothing(caplog):
    term = ALMLoss(mode="merge_by_space_prob+append_space", threshold=0.1)
    with caplog.at_level("WARNING", logger="zett.training.distill"):
        for _ in range(9):
            term._check_chunks(compared=0, aligned=12)
        assert not caplog.records
        term._check_chunks(compared=0, aligned=12)
        assert len(caplog.records) == 1 and "threshold (now 0.1" in caplog.records[0].getMessage()
        for _ in range(20):
            term._check_chunks(compared=0, aligned=12)
        assert len(caplog.records) == 1  # once, not every step
        term._check_chunks(compared=5, aligned=12)
        assert term._empty_steps == 0


# ------------------------------------------------------------------- end to end on a tiny model (no Lightning)
def _step(base, hypernet, teacher_tok, student_tok, texts, chunks="unconstrained", mode=""):
    """One ALM evaluation the way the training step does it: hypernet -> student; frozen base -> teacher."""
    from zett.models import adapter
    from zett.tokenizers import surface_forms
    from zett.training.alignment import align_batch, token_table

    sf = surface_forms(student_tok, teacher_tok, hypernet.config.max_pieces)
    source = adapter.source_embeddings(base)
    out = hypernet(sf.ids, sf.mask, source, special=sf.special)
    t = teacher_tok(texts, padding=True, return_tensors="pt")
    s = student_tok(texts, padding=True, return_tensors="pt")
    al = align_batch(t.input_ids, t.attention_mask, s.input_ids, s.attention_mask, token_table(teacher_tok),
                     token_table(student_tok), chunks)
    a_t, a_s = al.matrices()
    space = "space" in mode
    with torch.no_grad():
        h_t = adapter.hidden_states(base, source[t.input_ids], t.attention_mask)
        sm_t = torch.from_numpy(token_table(teacher_tok).starts_space | token_table(teacher_tok).special)
        lp_t, sp_t = sequence_logprobs(h_t, t.input_ids, t.attention_mask, adapter.output_embeddings(base),
                                       space_mask=sm_t if space else None)
    h_s = adapter.hidden_states(base, out.input_embeddings[s.input_ids], s.attention_mask)
    sm_s = torch.from_numpy(token_table(student_tok).starts_space | token_table(student_tok).special)
    lp_s, sp_s = sequence_logprobs(h_s, s.input_ids, s.attention_mask, out.output_embeddings,
                                   space_mask=sm_s if space else None)
    loss, stats = alm_loss(lp_t, lp_s, a_t, a_s, al.chunk_mask, sp_t, sp_s,
                           merge_by_space_prob="merge" in mode, append_space="append" in mode,
                           threshold=0.02)  # a random tiny model spreads its mass over a 300-token vocabulary
    lat = latent_loss(h_t, h_s, a_t, a_s, al.chunk_mask)
    return loss, lat, stats


@pytest.fixture(scope="module")
def tiny_setup():
    from zett.models import ZettHypernet
    from zett.testing import SAMPLE_TEXTS, tiny_llama, train_tokenizer

    teacher_tok = train_tokenizer(vocab_size=300, kind="bpe")
    teacher_tok.padding_side = "right"
    base = tiny_llama(teacher_tok)
    base.requires_grad_(False)
    other = train_tokenizer([t.lower() for t in SAMPLE_TEXTS] + ["a b c d e"], vocab_size=280, kind="bpe")
    return base, ZettHypernet.from_base_model(base, hidden_size=32, num_layers=1), teacher_tok, other


TEXTS = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b\n"]


@pytest.mark.parametrize("mode", ["", "merge_by_space_prob+append_space"])
def test_alm_minimum_when_student_is_teacher(tiny_setup, mode):
    """Same tokenizer, untrained residual hypernetwork (= the base embeddings): ALM and latents are 0 and the
    hypernetwork's gradient vanishes."""
    base, hn, tok, _ = tiny_setup
    hn.zero_grad(set_to_none=True)
    loss, lat, stats = _step(base, hn, tok, tok, TEXTS, mode=mode)
    assert stats["chunks"].item() > 10
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and lat.item() == pytest.approx(0.0, abs=1e-8)
    (loss + lat).backward()
    grads = [p.grad.abs().max().item() for p in hn.parameters() if p.grad is not None]
    assert grads and max(grads) < 1e-6


def test_gradients_reach_only_the_hypernetwork(tiny_setup):
    base, hn, tok, other = tiny_setup
    hn.zero_grad(set_to_none=True)
    loss, lat, stats = _step(base, hn, tok, other, TEXTS, chunks="space", mode="append_space")
    assert loss.item() > 1e-6 and stats["chunks"].item() > 5
    loss.backward()
    assert hn.input_head.proj.weight.grad is not None and hn.input_head.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in base.parameters())
