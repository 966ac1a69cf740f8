"""Image captioning: ViT-GPT2 and the other families of :mod:`core.captioning.families`."""

from typing import TYPE_CHECKING

from core._lazy import lazy_exports

if TYPE_CHECKING:  # the same names for type checkers; at run time each loads on first use
    from core.captioning.api import (
        caption,
        caption_batch,
        clear_cache,
        forget_captioner,
        get_captioner,
    )
    from core.captioning.captioner import Captioner
    from core.captioning.families import FAMILIES, Checkpoint, Family, model_family
    from core.captioning.generation import DECODING_MODES, GenerationOptions, decoding_kwargs
    from core.captioning.imagefolder import (
        METADATA_NAME,
        file_name_for,
        format_row,
        open_metadata,
        place_image,
        read_listed,
    )
    from core.captioning.modelspec import (
        DEFAULT_MODEL,
        ModelSpec,
        for_command,
        preflight_model,
        resolve_model_spec,
    )
    from core.captioning.outputs import (
        FORMATS,
        CaptionRecord,
        ResultWriter,
        coco_image_id,
        read_done,
        to_string,
    )
    from core.captioning.records import caption_records, iter_caption_records
    from core.captioning.scoring import METRICS, TOKENIZERS, References, ScoreReport, score_captions
    from core.captioning.sidecars import (
        SIDECAR_MODES,
        caption_extension,
        input_roots,
        mirror_name,
        remove_stale_temps,
        sidecar_path,
        sidecar_zip,
        write_sidecar,
    )
    from core.captioning.triggers import Triggers
    from core.captioning.webdataset_out import (
        Sample,
        ShardWriter,
        drop_failed,
        existing_shards,
        image_extension,
        iter_shard_meta,
        shard_name,
        write_shard,
    )

# Lazy (core/_lazy.py): importing this package must not import torch (fast `img2text --help`).
__getattr__, __dir__ = lazy_exports(__name__, {
    "core.captioning.api": ("caption", "caption_batch", "clear_cache", "forget_captioner", "get_captioner",),
    "core.captioning.captioner": ("Captioner",),
    "core.captioning.families": ("FAMILIES", "Checkpoint", "Family", "model_family",),
    "core.captioning.generation": ("GenerationOptions", "DECODING_MODES", "decoding_kwargs",),
    "core.captioning.modelspec": (
        "DEFAULT_MODEL", "ModelSpec", "for_command", "preflight_model", "resolve_model_spec",
    ),
    "core.captioning.outputs": (
        "FORMATS", "CaptionRecord", "ResultWriter", "coco_image_id", "read_done", "to_string",
    ),
    "core.captioning.records": ("caption_records", "iter_caption_records",),
    "core.captioning.imagefolder": (
        "METADATA_NAME", "file_name_for", "format_row", "open_metadata", "place_image", "read_listed",
    ),
    "core.captioning.sidecars": (
        "SIDECAR_MODES", "caption_extension", "input_roots", "mirror_name", "remove_stale_temps",
        "sidecar_path", "sidecar_zip", "write_sidecar",
    ),
    "core.captioning.triggers": ("Triggers",),
    "core.captioning.webdataset_out": (
        "Sample", "ShardWriter", "drop_failed", "existing_shards", "image_extension",
        "iter_shard_meta", "shard_name", "write_shard",
    ),
    "core.captioning.scoring": ("METRICS", "TOKENIZERS", "References", "ScoreReport", "score_captions",),
})

__all__ = [
    "METADATA_NAME",
    "SIDECAR_MODES",
    "Sample",
    "ShardWriter",
    "Triggers",
    "caption_extension",
    "drop_failed",
    "existing_shards",
    "file_name_for",
    "format_row",
    "image_extension",
    "input_roots",
    "iter_shard_meta",
    "mirror_name",
    "open_metadata",
    "place_image",
    "read_listed",
    "remove_stale_temps",
    "shard_name",
    "sidecar_path",
    "sidecar_zip",
    "write_shard",
    "write_sidecar",
    "DEFAULT_MODEL",
    "FAMILIES",
    "Checkpoint",
    "Family",
    "model_family",
    "DECODING_MODES",
    "FORMATS",
    "METRICS",
    "TOKENIZERS",
    "CaptionRecord",
    "Captioner",
    "GenerationOptions",
    "ModelSpec",
    "References",
    "ResultWriter",
    "ScoreReport",
    "caption",
    "caption_batch",
    "caption_records",
    "clear_cache",
    "coco_image_id",
    "decoding_kwargs",
    "for_command",
    "forget_captioner",
    "get_captioner",
    "iter_caption_records",
    "preflight_model",
    "read_done",
    "resolve_model_spec",
    "score_captions",
    "to_string",
]
