"""Fast caption decoding for ViT + GPT-2 ``VisionEncoderDecoderModel``s, same tokens as ``generate``.

What it saves compared with ``model.generate``: the encoder runs once per batch; every decoder
layer's cross-attention keys/values are computed once per batch and shared by the beams of an
image (``generate`` repeats them per beam and reorders them every step); the self-attention
KV cache is preallocated; the first beam-search step runs one row per image; an image leaves
the batch as soon as its caption is final, and the loop ends when every image is done.

Covered: greedy search and beam search (``early_stopping=True``, the model's
``length_penalty``) with ``max_length`` or ``max_new_tokens``, any eos/pad ids, any dtype.
Everything else falls back to ``model.generate`` (see :func:`fast_path_blocker`): sampling,
``no_repeat_ngram_size``, ``repetition_penalty``, a generation config that adds logits
processors or stopping rules, a decoder other than cross-attending GPT-2, or a length beyond
the decoder's position table. In float32 the output is token-for-token identical to
``generate`` (tests check greedy and 2-5 beams); every op also runs on CUDA.
"""

from __future__ import annotations

from typing import Any

import torch

from core.captioning.decode_loops import beam_search, greedy
from core.captioning.generation import GenerationOptions
from core.captioning.gpt2_step import GPT2Stepper

# Generation-config fields that add logits processors or stopping rules we do not implement;
# the fast path runs only while each one still has its library default.
_MUST_BE_DEFAULT = (
    "min_length", "min_new_tokens", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens",
    "forced_bos_token_id", "forced_eos_token_id", "exponential_decay_length_penalty",
    "sequence_bias", "renormalize_logits", "diversity_penalty", "num_beam_groups",
    "encoder_repetition_penalty", "encoder_no_repeat_ngram_size", "no_repeat_ngram_size",
    "repetition_penalty", "num_return_sequences", "guidance_scale", "watermarking_config",
    "stop_strings", "max_time", "constraints", "force_words_ids", "remove_invalid_values",
    "low_memory", "output_scores", "return_dict_in_generate", "assistant_model",
    "prompt_lookup_num_tokens",
)


def fast_path_blocker(model: Any, options: GenerationOptions) -> str | None:
    """Why the fast path cannot run these settings on this model, or ``None`` when it can."""
    if options.do_sample:
        return "sampling"
    if options.no_repeat_ngram_size:
        return "no_repeat_ngram_size"
    if options.repetition_penalty != 1.0:
        return "repetition_penalty"
    decoder = getattr(model, "decoder", None)
    config: Any = getattr(decoder, "config", None)
    if getattr(config, "model_type", None) != "gpt2" or not getattr(config, "add_cross_attention", False):
        return "decoder is not a cross-attending GPT-2"
    if config._attn_implementation == "eager" and config.reorder_and_upcast_attn:
        return "reorder_and_upcast_attn"
    if not hasattr(decoder, "lm_head") or not hasattr(decoder, "transformer"):
        return "decoder has no LM head"
    from transformers import GenerationConfig

    gen, default = model.generation_config, GenerationConfig()
    for name in _MUST_BE_DEFAULT:
        if getattr(gen, name, None) != getattr(default, name, None):
            return f"generation config sets {name}"
    if _start_id(model) is None:
        return "no decoder_start_token_id"
    if _max_length(options) > config.n_positions:
        return "max_length beyond the position table"
    return None


def _start_id(model: Any) -> int | None:
    gen = model.generation_config
    for value in (gen.decoder_start_token_id, model.config.decoder_start_token_id, gen.bos_token_id):
        if value is not None:
            return int(value[0] if isinstance(value, list) else value)
    return None


def _max_length(options: GenerationOptions) -> int:
    # Decoder length includes the start token, as in ``generate``.
    if options.max_new_tokens is not None:
        return 1 + options.max_new_tokens
    assert options.max_length is not None
    return options.max_length


def encode(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """Encoder output in the decoder's width (``enc_to_dec_proj`` applied when the model has one).

    Shape:
        pixel_values: ``(B, 3, H, W)``; output: ``(B, S, C_dec)``.
    """
    states = model.encoder(pixel_values=pixel_values).last_hidden_state
    dec_cfg = model.decoder.config
    if (
        model.encoder.config.hidden_size != dec_cfg.hidden_size
        and getattr(dec_cfg, "cross_attention_hidden_size", None) is None
    ):
        states = model.enc_to_dec_proj(states)
    return states


@torch.inference_mode()
def fast_generate(model: Any, pixel_values: torch.Tensor, options: GenerationOptions) -> torch.Tensor:
    """Caption token ids like ``model.generate(pixel_values=..., **options.to_hf_kwargs())``.

    Falls back to ``model.generate`` when :func:`fast_path_blocker` names a reason.

    Shape:
        pixel_values: ``(B, 3, H, W)``; output: ``(B, T)`` int64, start token first.
    """
    if fast_path_blocker(model, options) is not None:
        return model.generate(pixel_values=pixel_values, **options.to_hf_kwargs())
    gen = model.generation_config
    eos_ids = gen.eos_token_id  # like ``generate``: the generation config is the source of truth
    eos_list = [] if eos_ids is None else (eos_ids if isinstance(eos_ids, list) else [eos_ids])
    eos = torch.tensor(eos_list, dtype=torch.long, device=pixel_values.device) if eos_list else None
    pad = gen.pad_token_id
    if pad is None and eos_list:
        pad = eos_list[0]  # what ``generate`` does, minus the warning
    start, max_length = _start_id(model), _max_length(options)
    assert start is not None
    if pixel_values.shape[0] == 0:
        return torch.empty((0, 1), dtype=torch.long, device=pixel_values.device)
    stepper = GPT2Stepper(model.decoder, encode(model, pixel_values), options.num_beams, max_length)
    if options.num_beams == 1:
        return greedy(stepper, start, eos, pad, max_length)
    penalty = 1.0 if gen.length_penalty is None else float(gen.length_penalty)
    return beam_search(stepper, start, eos, pad, max_length, options.num_beams, penalty)
