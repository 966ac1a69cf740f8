"""One decoding step of a cross-attending GPT-2 with a preallocated self-attention KV cache.

The step reuses the Hugging Face ``GPT2LMHeadModel`` modules (LayerNorm, Conv1D, MLP, LM head) so
the weights are never copied and every projection is the very same computation ``generate`` runs.
Only the attention plumbing is ours:

* cross-attention keys/values are computed once per batch from the encoder output and shared by
  all beams of an image (the beams of one image ride along the SDPA query axis, so nothing is
  repeated or reordered per step);
* self-attention keys/values go into a static ``(rows, heads, max_len, head_dim)`` buffer per
  layer; beam search reorders the filled prefix in place.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class GPT2Stepper:
    """Runs decoder steps for ``images * beams`` rows against cached encoder keys/values.

    Args:
        decoder: a Hugging Face ``GPT2LMHeadModel`` built with ``add_cross_attention=True``.
        encoder_states: encoder output already projected to the decoder width.
            Shape: ``(B, S, C)``.
        beams: rows per image (1 for greedy).
        max_len: the longest decoder sequence (start token included) the cache must hold.
    """

    def __init__(self, decoder: Any, encoder_states: torch.Tensor, beams: int, max_len: int) -> None:
        self.lm_head = decoder.lm_head
        self.gpt = decoder.transformer
        self.blocks = list(self.gpt.h)
        first = self.blocks[0].attn
        self.heads, self.head_dim = first.num_heads, first.head_dim
        self.beams = beams
        self.max_len = max_len
        images = encoder_states.shape[0]
        self.rows = images * beams
        # Cross K/V once per batch: (B, H, S, D) per layer, never per step and never per beam.
        self.cross_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        for block in self.blocks:
            k, v = block.crossattention.c_attn(encoder_states).split(block.crossattention.split_size, dim=2)
            self.cross_kv.append((self._heads(k), self._heads(v)))
        shape = (self.rows, self.heads, max_len, self.head_dim)
        dtype, device = encoder_states.dtype, encoder_states.device
        self.self_kv = [
            (torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device))
            for _ in self.blocks
        ]

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, T, C)`` -> ``(N, H, T, D)``."""
        return x.view(*x.shape[:-1], self.heads, self.head_dim).transpose(1, 2)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """Feed one token per row at position ``pos``; return next-token logits in float32.

        Shape:
            tokens: ``(rows,)``; output: ``(rows, vocab)``.
        """
        rows = tokens.shape[0]
        x = self.gpt.wte(tokens[:, None]) + self.gpt.wpe.weight[pos]  # (N, 1, C)
        for block, (ck, cv), (kc, vc) in zip(self.blocks, self.cross_kv, self.self_kv, strict=True):
            attn = block.attn
            q, k, v = attn.c_attn(block.ln_1(x)).split(attn.split_size, dim=2)
            kc[:rows, :, pos : pos + 1] = self._heads(k)
            vc[:rows, :, pos : pos + 1] = self._heads(v)
            # The newest token may attend to every cached one, so no causal mask is needed.
            a = F.scaled_dot_product_attention(
                self._heads(q), kc[:rows, :, : pos + 1], vc[:rows, :, : pos + 1], scale=attn.scaling
            )
            x = x + attn.c_proj(a.transpose(1, 2).reshape(rows, 1, -1))
            x = x + self._cross(block, block.ln_cross_attn(x), ck, cv)
            x = x + block.mlp(block.ln_2(x))
        h = self.gpt.ln_f(x)
        return self.lm_head(h)[:, 0].float()

    def _cross(self, block: Any, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Cross-attention with the beams of each image stacked on the query axis.

        Shape:
            h: ``(B * beams, 1, C)``; k, v: ``(B, H, S, D)``; output: ``(B * beams, 1, C)``.
        """
        cross = block.crossattention
        rows, images = h.shape[0], k.shape[0]
        # rows // images: the first beam-search step runs one row per image, later ones all beams.
        q = cross.q_attn(h).view(images, rows // images, self.heads, self.head_dim).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, scale=cross.scaling)  # (B, H, beams, D)
        return cross.c_proj(a.transpose(1, 2).reshape(rows, 1, -1))

    def expand_first_step(self) -> None:
        """After a first step run on one row per image, copy its cache to every beam."""
        images = self.rows // self.beams
        for kc, vc in self.self_kv:
            kc[:, :, :1] = kc[:images, :, :1].repeat_interleave(self.beams, dim=0)
            vc[:, :, :1] = vc[:images, :, :1].repeat_interleave(self.beams, dim=0)

    def reorder(self, rows: torch.Tensor, length: int) -> None:
        """Beam search: row ``i`` continues from row ``rows[i]`` (same image), first ``length`` steps.

        Shape:
            rows: ``(B * beams,)`` int64.
        """
        for kc, vc in self.self_kv:
            kc[:, :, :length] = kc[:, :, :length].index_select(0, rows)
            vc[:, :, :length] = vc[:, :, :length].index_select(0, rows)

    def keep_images(self, images: torch.Tensor) -> None:
        """Drop finished images so later steps only compute the live ones.

        Shape:
            images: ``(B_kept,)`` int64 indices into the current images.
        """
        rows = (images[:, None] * self.beams + torch.arange(self.beams, device=images.device)).reshape(-1)
        self.cross_kv = [(k.index_select(0, images), v.index_select(0, images)) for k, v in self.cross_kv]
        self.self_kv = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.self_kv]
        self.rows = rows.shape[0]
