"""Caption decoding loops, greedy and beam search, over a `GPT2Stepper`; same tokens as ``generate``.

Beam search follows ``GenerationMixin._beam_search`` (transformers 5.x) step for step: the top
``max(2, 1 + n_eos) * num_beams`` continuations, finished hypotheses scored as
``sum(log p) / generated_len ** length_penalty``, ``early_stopping=True`` (an image is done once
it holds ``num_beams`` finished hypotheses), and the output cropped to the longest best
hypothesis and filled with the pad token. Both loops stop computing an image as soon as its
result can no longer change, and stop altogether when every image is done.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.captioning.gpt2_step import GPT2Stepper

_NEG = -1.0e9  # Hugging Face's "impossible" score; the same constant keeps tie-breaking identical


def _ends(tokens: torch.Tensor, eos: torch.Tensor | None) -> torch.Tensor:
    if eos is None or eos.numel() == 0:
        return torch.zeros_like(tokens, dtype=torch.bool)
    return torch.isin(tokens, eos)


def greedy(
    stepper: GPT2Stepper, start_id: int, eos: torch.Tensor | None, pad_id: int | None, max_length: int
) -> torch.Tensor:
    """Arg-max decoding; finished rows are dropped from the batch and padded in the output.

    Shape:
        output: ``(B, T)`` with ``T <= max_length``, the start token first.
    """
    rows = stepper.rows
    device = stepper.cross_kv[0][0].device
    fill = pad_id if pad_id is not None else 0
    out = torch.full((rows, max_length), fill, dtype=torch.long, device=device)
    out[:, 0] = start_id
    live = torch.arange(rows, device=device)  # output row of each computed row
    tokens = out[:, 0].clone()
    length = 1
    while length < max_length:
        tokens = stepper.step(tokens, length - 1).argmax(dim=-1)
        out[live, length] = tokens
        length += 1
        done = _ends(tokens, eos)
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            live, tokens = live[keep], tokens[keep]
            stepper.keep_images(keep)
    return out[:, :length]


@dataclass
class _Beams:
    """Beam-search state of the images still being decoded (row ``i`` = image ``live[i]``).

    Shape:
        run_*: ``(n, nb, ...)`` running hypotheses; fin_*: ``(n, nb, ...)`` finished ones,
        best first; ``improvable``: ``(n, 1)``; ``live``: ``(n,)`` output row of each image.
    """

    run_seq: torch.Tensor  # (n, nb, max_length) token ids of the running beams
    run_scores: torch.Tensor  # (n, nb) summed log-probabilities
    run_src: torch.Tensor  # (n, nb) which beam of the previous step each one continues
    fin_seq: torch.Tensor  # (n, nb, max_length) finished hypotheses
    fin_scores: torch.Tensor  # (n, nb) their length-penalised scores (_NEG = empty slot)
    fin_len: torch.Tensor  # (n, nb) their generated lengths
    finished: torch.Tensor  # (n, nb) bool: the slot holds a finished hypothesis
    improvable: torch.Tensor  # (n, 1) bool: a running beam can still beat the worst finished one
    live: torch.Tensor  # (n,) output row of each image

    @classmethod
    def start(cls, images: int, nb: int, max_length: int, fill: int, start_id: int,
              device: torch.device) -> _Beams:
        run_seq = torch.full((images, nb, max_length), fill, dtype=torch.long, device=device)
        run_seq[:, :, 0] = start_id
        run_scores = torch.zeros((images, nb), device=device)
        run_scores[:, 1:] = _NEG  # identical beams at the start: only the first one counts
        return cls(
            run_seq, run_scores, torch.zeros((images, nb), dtype=torch.long, device=device),
            run_seq.clone(), torch.full((images, nb), _NEG, device=device),
            torch.zeros((images, nb), dtype=torch.long, device=device),
            torch.zeros((images, nb), dtype=torch.bool, device=device),
            torch.ones((images, 1), dtype=torch.bool, device=device),
            torch.arange(images, device=device),
        )

    def keep(self, keep: torch.Tensor) -> None:
        """Keep only the images at rows ``keep`` (the others are done)."""
        for name in ("run_seq", "run_scores", "run_src", "fin_seq", "fin_scores", "fin_len",
                     "finished", "improvable", "live"):
            setattr(self, name, getattr(self, name)[keep])


def _merge_finished(b: _Beams, top_seq: torch.Tensor, top_lp: torch.Tensor, just: torch.Tensor,
                    cur: int, length_penalty: float) -> None:
    """Merge the hypotheses that just ended into the kept finished ones when they score higher.

    Shape:
        top_seq: ``(n, K, max_length)``; top_lp, just: ``(n, K)`` with ``K = keep_k``.
    """
    nb = b.fin_scores.shape[1]
    cand = top_lp / (cur ** length_penalty)
    cand = cand + torch.all(b.finished, dim=-1, keepdim=True).to(torch.float32) * _NEG
    cand = cand + (~b.improvable).to(torch.float32) * _NEG
    cand = cand + (~just) * _NEG
    sel = torch.topk(torch.cat((b.fin_scores, cand), dim=1), k=nb)[1]
    b.fin_seq = torch.take_along_dim(torch.cat((b.fin_seq, top_seq), 1), sel[:, :, None], dim=1)
    b.fin_scores = torch.take_along_dim(torch.cat((b.fin_scores, cand), 1), sel, dim=1)
    cur_len = torch.full_like(just, cur, dtype=torch.long)
    b.fin_len = torch.take_along_dim(torch.cat((b.fin_len, cur_len), 1), sel, dim=1)
    b.finished = torch.take_along_dim(torch.cat((b.finished, just), 1), sel, dim=1)


def _advance(b: _Beams, logp: torch.Tensor, cur: int, eos: torch.Tensor | None, max_length: int,
             keep_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Extend every beam by one token: the best ``keep_k`` continuations, and the next live beams.

    Returns:
        ``(top_seq, top_lp, hits)``: the candidates, their scores and which of them just ended.

    Shape:
        logp: ``(n * nb, vocab)`` log-probabilities of the next token.
    """
    n, nb = b.run_scores.shape
    vocab = logp.shape[-1]
    acc = (logp.view(n, nb, vocab) + b.run_scores[:, :, None]).view(n, nb * vocab)
    top_lp, top_idx = torch.topk(acc, k=keep_k)
    src = top_idx // vocab
    top_seq = torch.take_along_dim(b.run_seq, src[:, :, None], dim=1)
    top_seq[:, :, cur] = top_idx % vocab
    hits = _ends(top_idx % vocab, eos) | (cur + 1 >= max_length)
    # Live beams for the next step: the best candidates that have not just ended.
    run_lp = top_lp + hits.to(torch.float32) * _NEG
    nxt = torch.topk(run_lp, k=nb)[1]
    b.run_seq = torch.take_along_dim(top_seq, nxt[:, :, None], dim=1)
    b.run_scores = torch.take_along_dim(run_lp, nxt, dim=1)
    b.run_src = torch.take_along_dim(src, nxt, dim=1)
    return top_seq, top_lp, hits


def beam_search(
    stepper: GPT2Stepper,
    start_id: int,
    eos: torch.Tensor | None,
    pad_id: int | None,
    max_length: int,
    num_beams: int,
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Beam search with ``early_stopping=True``; returns the best hypothesis per image.

    Shape:
        output: ``(B, T)`` with ``T <= max_length``, the start token first.
    """
    device = stepper.cross_kv[0][0].device
    images, nb = stepper.rows // num_beams, num_beams
    n_eos = 0 if eos is None else eos.numel()
    keep_k = max(2, 1 + n_eos) * nb
    top_mask = torch.arange(keep_k, device=device) < nb
    # Hugging Face's fill value, including its ``pad or eos[0]`` quirk.
    fill = (pad_id or int(eos[0])) if eos is not None and n_eos else -1
    result = torch.full((images, max_length), fill, dtype=torch.long, device=device)
    result_len = torch.zeros(images, dtype=torch.long, device=device)
    b = _Beams.start(images, nb, max_length, fill, start_id, device)

    # The first step has identical beams: run one row per image, then copy it to every beam.
    tokens = torch.full((images,), start_id, dtype=torch.long, device=device)
    cur = 1
    while True:
        logp = F.log_softmax(stepper.step(tokens, cur - 1), dim=-1)
        if cur == 1:
            logp = logp.repeat_interleave(nb, dim=0)
            stepper.expand_first_step()
        top_seq, top_lp, hits = _advance(b, logp, cur, eos, max_length, keep_k)
        _merge_finished(b, top_seq, top_lp, hits & top_mask[None, :], cur, length_penalty)
        cur += 1
        if bool(hits.all()):  # max_length reached: every candidate just ended
            break
        best_running = b.run_scores[:, :1] / ((cur - 1) ** length_penalty)
        worst_fin = torch.where(b.finished, torch.min(b.fin_scores, dim=1, keepdim=True)[0], _NEG)
        b.improvable = b.improvable & torch.any(best_running > worst_fin, dim=-1, keepdim=True)
        # An image is done once all its beams finished (early_stopping=True) or none can improve.
        done = torch.all(b.finished, dim=-1) | ~b.improvable[:, 0]
        if bool(done.any()):
            result[b.live[done]] = b.fin_seq[done, 0]
            result_len[b.live[done]] = b.fin_len[done, 0]
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            b.keep(keep)
            stepper.keep_images(keep)
        offset = torch.arange(b.live.shape[0], device=device)[:, None] * nb
        stepper.reorder((b.run_src + offset).reshape(-1), cur - 1)
        tokens = b.run_seq[:, :, cur - 1].reshape(-1)

    if b.live.numel():
        result[b.live] = b.fin_seq[:, 0]
        result_len[b.live] = b.fin_len[:, 0]
    return result[:, : 1 + int(result_len.max())]
