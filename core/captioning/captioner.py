"""`Captioner`: one loaded model, reused for many images, safe to share between threads."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import torch
from PIL import Image

from core.captioning.families import VIT_GPT2, Family, family_for_config
from core.captioning.fast_decode import fast_generate, fast_path_blocker
from core.captioning.generation import GenerationOptions, clean_caption
from core.captioning.int8_compile import (
    COMPILING,
    QUANTISING,
    READING,
    READY,
    BackgroundCompile,
    CompileFn,
)
from core.captioning.jpeg import decode_jpegs, read_plain_jpeg
from core.captioning.loading import (
    ModelSpec,
    load_components,
    load_with,
    read_model_config,
    resolve_model_spec,
)
from core.captioning.prompted import PromptedModel, load_prompted
from core.captioning.quantize import INT8, compiled_encoder, quantize_int8
from core.devices import precision_name, resolve_device, resolve_dtype
from core.errors import ConfigError, InvalidImageError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageInput, describe, load_image

DEFAULT_BATCH_SIZE = 16
ErrorMode = Literal["raise", "return"]
CompileMode = Literal["background", "wait", "off"]


class Captioner:
    """A captioner of any supported family (ViT-GPT2, BLIP, GIT, Florence-2, BLIP-2, PaliGemma,
    chat VLMs; :mod:`core.captioning.families`), chosen from the model's ``config.json``.

    Args:
        model: hub id (``"id@revision"`` pins a revision), local ``save_pretrained`` folder, or
            ``None`` for ``$IMG2TEXT_MODEL`` or the default ``ydshieh/vit-gpt2-coco-en``.
        device: ``"auto"``/``None``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        dtype: ``"auto"``/``None`` (bfloat16 on a capable GPU, else float32) or a dtype name;
            ``"int8"`` (CPU only, opt-in) quantises the linear layers' weights to int8 with torchao
            (:mod:`core.captioning.quantize`): faster, and captions may differ from float32's.
        max_pixels: pixel cap applied to every input image.
        fast_decode: decode with :func:`core.captioning.fast_decode.fast_generate` (same tokens
            as ``model.generate``, less work); settings it does not cover use ``generate``.
        device_decode: decode plain JPEG files with ``torchvision.io.decode_jpeg`` on the model's
            device (nvJPEG on CUDA) instead of Pillow. ``None`` = on for CUDA only. On CPU both
            decoders give the same pixels.
        threads: CPU threads for this captioner's forward passes; set around each call and
            restored afterwards. ``None`` leaves torch's setting alone.
        trust_remote_code: run a checkpoint's own model code (``config.json`` with ``auto_map``);
            off by default, such checkpoints are refused with the native alternative named.
        progress: called with each loading stage's name (:mod:`core.captioning.int8_compile`:
            reading weights, quantising to int8, compiling the encoder in the background, ready);
            int8's last stage comes from the compile thread. None = quiet.
        int8_compile: int8 only: ``"background"`` captions with the eager int8 encoder at once and
            swaps the compiled one in when built; ``"wait"`` compiles before returning; ``"off"``
            stays eager.
        compile_fn: builds the compiled encoder (tests inject one);
            None = :func:`core.captioning.quantize.compiled_encoder`.
        int8_kernel: int8 only: ``"auto"`` (this CPU's fast one, :func:`core.devices.int8_kernel`),
            ``"torchao"`` (compiled as ``int8_compile`` says) or ``"fbgemm"`` (eager; nothing compiles).

    Raises:
        ModelUnavailableError: the model cannot be found or loaded, its family is not supported,
            or it needs its own code without ``trust_remote_code`` (the message says how to fix it).
        ConfigError: a precision the family does not support (int8 is ViT-GPT2's only).
    """

    def __init__(
        self,
        model: str | ModelSpec | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        fast_decode: bool = True,
        device_decode: bool | None = None,
        threads: int | None = None,
        trust_remote_code: bool = False,
        progress: Callable[[str], None] | None = None,
        int8_compile: CompileMode = "background",
        compile_fn: CompileFn | None = None,
        int8_kernel: str = "auto",
    ) -> None:
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.spec = resolve_model_spec(model)
        self.device = resolve_device(device)
        self.precision = precision_name(dtype, self.device)  # "float32", "bfloat16", "int8", ...
        if self.precision == INT8 and self.device.type != "cpu":
            raise ConfigError(f"dtype int8 runs on the CPU, not {self.device}; on a GPU use bfloat16")
        # int8 keeps float32 activations; only the linear layers' weights are quantised.
        self.dtype = torch.float32 if self.precision == INT8 else resolve_dtype(dtype, self.device)
        self.max_pixels = max_pixels
        self.fast_decode = fast_decode
        self.device_decode = self.device.type == "cuda" if device_decode is None else device_decode
        self.threads = threads
        self.trust_remote_code = trust_remote_code
        self.family: Family = family_for_config(
            read_model_config(self.spec), source=str(self.spec), trust_remote_code=trust_remote_code)
        self.prompted: PromptedModel | None = None
        # generate() mutates per-call state and seeding touches the global RNG: one call at a time.
        self._lock = threading.Lock()
        self._compile: BackgroundCompile | None = None
        if progress is not None:
            progress(READING)
        if self.family.name == VIT_GPT2:
            self.model, self.processor, self.tokenizer = load_components(
                self.spec, device=self.device, dtype=self.dtype
            )
        else:
            self._load_prompted()
        self.int8_kernel: str | None = None  # int8: the kernel in use (torchao or fbgemm)
        if self.precision == INT8:
            self._quantise(progress, int8_compile, compile_fn or compiled_encoder, int8_kernel)
        elif progress is not None:
            progress(READY)

    def _quantise(self, progress: Callable[[str], None] | None, mode: CompileMode, compile_fn: CompileFn,
                  kernel: str) -> None:
        """int8 weights now; torchao's compiled encoder in the background (or now, or never: ``mode``)."""
        if mode not in ("background", "wait", "off"):
            raise ConfigError(f"int8_compile {mode!r}: choose background, wait or off")
        if progress is not None:
            progress(QUANTISING)
        self.int8_kernel = quantize_int8(self.model, kernel=kernel)
        if mode == "off" or self.int8_kernel == "fbgemm":  # fbgemm runs eagerly: nothing to compile
            if progress is not None:
                progress(READY)
            return
        self._compile = BackgroundCompile(self.model, self._lock, compile_fn, progress)
        if progress is not None:
            progress(COMPILING)  # ready: captions run on the eager int8 encoder meanwhile
        self._compile.start()
        if mode == "wait":
            self._compile.wait()

    def _load_prompted(self) -> None:
        if self.precision == INT8:
            raise ConfigError(f"{self.spec}: dtype int8 is for ViT-GPT2 models only (its torchao path); "
                              f"a {self.family.name} model runs in float32, or bfloat16 on a GPU")
        self.fast_decode = self.device_decode = False  # ViT-GPT2's decoder and pixel path only
        self.prompted = load_with(self.spec, lambda **hub: load_prompted(
            self.spec.name, self.family, device=self.device, dtype=self.dtype,
            trust_remote_code=self.trust_remote_code, **hub))
        self.model, self.processor = self.prompted.model, self.prompted.processor
        self.tokenizer = self.prompted.tokenizer

    # -- public API -------------------------------------------------------------------------

    def options(self, **generation: Any) -> GenerationOptions:
        """``**generation`` over this model family's defaults, prompt resolved (what a caption
        is made with; recorded in result files' ``.meta.json``).

        Raises:
            ConfigError: invalid options, or a prompt this family does not take.
        """
        return self.family.options(generation)

    def caption(self, image: ImageInput, **generation: Any) -> str:
        """Caption one image. ``generation`` takes Hugging Face names plus ``seed``."""
        return self.caption_batch([image], errors="raise", **generation)[0]  # type: ignore[return-value]

    def caption_batch(
        self,
        images: Iterable[ImageInput],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        errors: ErrorMode = "raise",
        progress: Callable[[int], None] | None = None,
        max_pixels: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        **generation: Any,
    ) -> list[str | InvalidImageError]:
        """Caption many images; the encoder and decoder run once per chunk of ``batch_size``.

        Args:
            images: any iterable of image inputs (see :func:`core.load_image`).
            batch_size: images per forward pass.
            errors: ``"raise"`` stops at the first bad image; ``"return"`` puts the
                :class:`InvalidImageError` in that image's slot and captions the rest.
            progress: called with the number of images finished after each chunk.
            max_pixels: pixel cap for this call (``None``: the captioner's ``max_pixels``); lets
                callers that share one cached captioner use their own caps.
            max_bytes: encoded-size cap for paths, bytes and file objects (see ``load_image``).
            **generation: options of :class:`GenerationOptions`.

        Returns:
            One caption (or, with ``errors="return"``, an error) per input, in input order.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if errors not in ("raise", "return"):
            raise ConfigError(f"errors must be 'raise' or 'return', got {errors!r}")
        cap = self.max_pixels if max_pixels is None else max_pixels
        if cap < 1:
            raise ConfigError(f"max_pixels must be >= 1, got {cap}")
        options = self.options(**generation)
        results: list[str | InvalidImageError] = []
        chunk: list[ImageInput] = []
        for image in images:
            chunk.append(image)
            if len(chunk) == batch_size:
                results.extend(self._caption_chunk(chunk, options, errors, cap, max_bytes))
                chunk = []
                if progress:
                    progress(len(results))
        if chunk:
            results.extend(self._caption_chunk(chunk, options, errors, cap, max_bytes))
            if progress:
                progress(len(results))
        return results

    def preprocess(self, images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
        """RGB images (PIL, or ``(3, H, W)`` uint8 tensors) -> normalised pixels on the device.

        Shape:
            Output: ``(B, 3, H, W)`` in the model's dtype (H = W = 224 for ViT-B/16).
        """
        extra: dict[str, Any] = {}
        if any(isinstance(im, torch.Tensor) for im in images):
            extra["device"] = self.device  # resize where the decoded tensors already are
        batch = self.processor(images=list(images), return_tensors="pt", **extra)
        return batch["pixel_values"].to(self.device, self.dtype)

    @torch.inference_mode()
    def generate_ids(self, pixel_values: torch.Tensor, options: GenerationOptions) -> torch.Tensor:
        """Caption token ids for a preprocessed batch: the fast decoder, else ``model.generate``.

        Both give the same tokens in float32; the fast decoder covers greedy and beam search
        (see :func:`core.captioning.fast_decode.fast_path_blocker` for what falls back).

        Shape:
            pixel_values: ``(B, 3, H, W)``; output: ``(B, T)`` token ids incl. the start token.
        """
        kwargs = options.to_hf_kwargs()
        with self._lock, self._thread_scope():
            if self.uses_fast_path(options):
                return fast_generate(self.model, pixel_values, options)
            if options.seed is None:
                return self.model.generate(pixel_values=pixel_values, **kwargs)
            # Seed a forked RNG so sampling is reproducible without disturbing the caller's RNG.
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(options.seed)
                return self.model.generate(pixel_values=pixel_values, **kwargs)

    def uses_fast_path(self, options: GenerationOptions) -> bool:
        """Whether :meth:`generate_ids` runs the fast decoder for these options."""
        return self.fast_decode and fast_path_blocker(self.model, options) is None

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        texts = self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)
        return [clean_caption(t) for t in texts]

    @property
    def stage(self) -> str:
        """The loading stage now: ``"ready"``, int8's ``"compiling the encoder in the background"``
        (captions already run, on the eager encoder), or the compile failure's text."""
        return READY if self._compile is None else self._compile.stage

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Wait for int8's compiled encoder (or its failure); True at once when nothing compiles."""
        return True if self._compile is None else self._compile.wait(timeout)

    @property
    def info(self) -> dict[str, Any]:
        """Provenance recorded next to structured outputs."""
        return {
            "model": self.spec.name,
            "revision": self.spec.revision,
            "family": self.family.name,
            "device": str(self.device),
            "dtype": self.precision,
        }

    def __repr__(self) -> str:
        return f"Captioner(model={str(self.spec)!r}, device={self.device}, dtype={self.precision})"

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _thread_scope(self) -> Iterator[None]:
        """Apply ``threads`` for one call only: the process-wide setting is restored after."""
        if self.threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _captions(self, images: list[Image.Image | torch.Tensor], options: GenerationOptions) -> list[str]:
        if self.prompted is None:
            return self.decode(self.generate_ids(self.preprocess(images), options))
        pictures = [im for im in images if isinstance(im, Image.Image)]  # no device decode here
        with self._lock, self._thread_scope(), self._seeded(options.seed):
            ids = self.prompted.generated_ids(pictures, options)
        return self.prompted.decode(ids)

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """Seed a forked RNG so sampling is reproducible without disturbing the caller's RNG."""
        if seed is None:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _caption_chunk(
        self, chunk: list[ImageInput], options: GenerationOptions, errors: ErrorMode, max_pixels: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> list[str | InvalidImageError]:
        out: list[str | InvalidImageError | None] = [None] * len(chunk)
        images: list[Image.Image | torch.Tensor] = []
        slots: list[int] = []
        if self.device_decode:
            jpegs = [(i, read_plain_jpeg(src, max_pixels, max_bytes)) for i, src in enumerate(chunk)]
            found = [(i, data) for i, data in jpegs if data is not None]
            if found:
                try:
                    images.extend(decode_jpegs([d for _, d in found], self.device))
                    slots.extend(i for i, _ in found)
                except RuntimeError:  # a corrupt stream: load_image below reports it properly
                    pass
        for i, src in enumerate(chunk):
            if i in slots:
                continue
            try:
                images.append(load_image(src, max_pixels=max_pixels, max_bytes=max_bytes))
                slots.append(i)
            except InvalidImageError as exc:
                if errors == "raise":
                    raise
                out[i] = exc
            # Per-input boundary: inputs are untrusted (uploads, file lists) and go through
            # Pillow's decoders, whose failure types are not a closed set. load_image turns the
            # known ones into InvalidImageError; anything else becomes this input's error (its
            # type in the message) so the other inputs of the batch are still captioned.
            except Exception as exc:
                err = InvalidImageError(describe(src), f"unexpected error: {type(exc).__name__}: {exc}")
                if errors == "raise":
                    raise err from exc
                out[i] = err
        if images:
            captions = self._captions(images, options)
            for slot, text in zip(slots, captions, strict=True):
                out[slot] = text
        return out  # type: ignore[return-value]
