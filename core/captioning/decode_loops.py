"""Caption decoding loops, greedy and beam search, over a `GPT2Stepper`; same tokens as ``generate``.

Beam search follows ``GenerationMixin._beam_search`` (transformers 5.x) step for step: the top
``max(2, 1 + n_eos) * num_beams`` continuations, finished hypotheses scored as
``sum(log p) / generated_len ** length_penalty``, ``early_stopping=True`` (an image is done once
it holds ``num_beams`` finished hypotheses), and the output cropped to the longest best
hypothesis and filled with the pad token. Both loops stop computing an image as soon as its
result can no longer change, and stop altogether when every image is done.
"""

from __future__ import annotations

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

    run_seq = torch.full((images, nb, max_length), fill, dtype=torch.long, device=device)
    run_seq[:, :, 0] = start_id
    run_scores = torch.zeros((images, nb), device=device)
    run_scores[:, 1:] = _NEG
    fin_seq = run_seq.clone()
    fin_scores = torch.full((images, nb), _NEG, device=device)
    fin_len = torch.zeros((images, nb), dtype=torch.long, device=device)  # generated tokens
    finished = torch.zeros((images, nb), dtype=torch.bool, device=device)
    improvable = torch.ones((images, 1), dtype=torch.bool, device=device)
    live = torch.arange(images, device=device)

    # The first step has identical beams: run one row per image, then copy it to every beam.
    tokens = torch.full((images,), start_id, dtype=torch.long, device=device)
    cur = 1
    while True:
        logp = F.log_softmax(stepper.step(tokens, cur - 1), dim=-1)
        if cur == 1:
            logp = logp.repeat_interleave(nb, dim=0)
            stepper.expand_first_step()
        n, vocab = logp.shape[0] // nb, logp.shape[-1]
        acc = (logp.view(n, nb, vocab) + run_scores[:, :, None]).view(n, nb * vocab)
        top_lp, top_idx = torch.topk(acc, k=keep_k)
        src = top_idx // vocab
        top_seq = torch.take_along_dim(run_seq, src[:, :, None], dim=1)
        top_seq[:, :, cur] = top_idx % vocab
        hits = _ends(top_idx % vocab, eos) | (cur + 1 >= max_length)

        # Live beams for the next step: the best candidates that have not just ended.
        run_lp = top_lp + hits.to(torch.float32) * _NEG
        nxt = torch.topk(run_lp, k=nb)[1]
        run_seq = torch.take_along_dim(top_seq, nxt[:, :, None], dim=1)
        run_scores = torch.take_along_dim(run_lp, nxt, dim=1)
        run_src = torch.take_along_dim(src, nxt, dim=1)

        # Finished hypotheses: merge the new ones into the kept ones when they score higher.
        just = hits & top_mask[None, :]
        cand = top_lp / (cur ** length_penalty)
        cand = cand + torch.all(finished, dim=-1, keepdim=True).to(torch.float32) * _NEG
        cand = cand + (~improvable).to(torch.float32) * _NEG
        cand = cand + (~just) * _NEG
        sel = torch.topk(torch.cat((fin_scores, cand), dim=1), k=nb)[1]
        fin_seq = torch.take_along_dim(torch.cat((fin_seq, top_seq), 1), sel[:, :, None], dim=1)
        fin_scores = torch.take_along_dim(torch.cat((fin_scores, cand), 1), sel, dim=1)
        fin_len = torch.take_along_dim(torch.cat((fin_len, torch.full_like(top_idx, cur)), 1), sel, dim=1)
        finished = torch.take_along_dim(torch.cat((finished, just), 1), sel, dim=1)

        cur += 1
        if bool(hits.all()):  # max_length reached: every candidate just ended
            break
        best_running = run_scores[:, :1] / ((cur - 1) ** length_penalty)
        worst_fin = torch.where(finished, torch.min(fin_scores, dim=1, keepdim=True)[0], _NEG)
        improvable = improvable & torch.any(best_running > worst_fin, dim=-1, keepdim=True)

        # An image is done once all its beams finished (early_stopping=True) or none can improve.
        done = torch.all(finished, dim=-1) | ~improvable[:, 0]
        if bool(done.any()):
            result[live[done]] = fin_seq[done, 0]
            result_len[live[done]] = fin_len[done, 0]
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            live, run_seq, run_scores, run_src = live[keep], run_seq[keep], run_scores[keep], run_src[keep]
            fin_seq, fin_scores, fin_len = fin_seq[keep], fin_scores[keep], fin_len[keep]
            finished, improvable = finished[keep], improvable[keep]
            stepper.keep_images(keep)
        n = live.shape[0]
        offset = torch.arange(n, device=device)[:, None] * nb
        stepper.reorder((run_src + offset).reshape(-1), cur - 1)
        tokens = run_seq[:, :, cur - 1].reshape(-1)

    if live.numel():
        result[live] = fin_seq[:, 0]
        result_len[live] = fin_len[:, 0]
    return result[:, : 1 + int(result_len.max())]
