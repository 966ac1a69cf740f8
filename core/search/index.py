"""``EmbeddingIndex``: a gallery's embeddings with metadata, saved/loaded/checked, and queried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError
from core.search.embed import DEFAULT_BATCH_SIZE, OnError, embed_images
from core.search.encoder import EncoderLike, config_dict, describe_preprocessing, load_checkpoint
from core.search.gallery import gallery_items, relative_to_root, weights_path_str
from core.search.query import Query, search_index
from core.search.storage import IndexFormatError, read_index, write_index
from core.search.topk import SearchResult


@dataclass(frozen=True)
class CheckpointInfo:
    """Which encoder produced an index: enough to detect a stale index and reload the encoder."""

    sha256: str
    weights_path: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class EmbeddingIndex:
    """Unit-norm embeddings of a gallery, one row per image, plus what each image is.

    Attributes:
        embeddings: Shape: (N, D), float32, rows L2-normalised.
        image_ids, paths, relative_paths, captions, categories: per row (``relative_paths`` is
            relative to ``data_root`` when the image lies under it, else ``None``).
        category_names: COCO category id -> name.
        data_root: the dataset folder the gallery came from, if any.
        checkpoint: the encoder that made the embeddings.
        preprocessing: the eval transform, as recorded.
        skipped: ``{"path", "reason"}`` for images that failed to load at build time.
    """

    embeddings: torch.Tensor
    image_ids: list[int | str]
    paths: list[Path]
    relative_paths: list[str | None]
    captions: list[list[str]]
    categories: list[list[int]]
    category_names: dict[int, str]
    data_root: Path | None
    checkpoint: CheckpointInfo
    preprocessing: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)
    encoder: EncoderLike | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.embeddings.shape[0]
        sizes = {
            len(x)
            for x in (
                self.image_ids,
                self.paths,
                self.relative_paths,
                self.captions,
                self.categories,
            )
        }
        if self.embeddings.ndim != 2 or sizes != {n}:
            raise ValueError(f"index metadata does not have one entry per embedding row ({n} rows)")
        self._rows: dict[Any, int] = {}
        for row, image_id in enumerate(self.image_ids):
            if image_id in self._rows:
                raise ValueError(f"duplicate image id {image_id!r} in the index")
            self._rows[image_id] = row
        # Ids typed on a command line arrive as strings; let "397133" find the int id 397133.
        self._rows_by_text = {str(i): r for i, r in self._rows.items()}

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.embeddings.shape[1])

    def same_contents(self, other: EmbeddingIndex) -> bool:
        """True when both indexes hold identical arrays and metadata (the encoder aside)."""
        return (
            torch.equal(self.embeddings, other.embeddings) and self._manifest() == other._manifest()
        )

    # ---------------------------------------------------------------- building and storage
    @classmethod
    def build(
        cls,
        encoder: EncoderLike,
        records_or_paths: Any,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | torch.device | None = None,
        on_error: OnError = "skip",
        data_root: str | Path | None = None,
        category_names: Mapping[int, str] | None = None,
        progress: bool | None = None,
    ) -> EmbeddingIndex:
        """Embed a gallery: a ``DatasetInfo``, a list of ``ImageRecord`` or a list of paths.

        Raises:
            ValueError: empty gallery, duplicate ids, or every image failed.
            InvalidImageError: an image failed and ``on_error="raise"``.
        """
        if hasattr(records_or_paths, "records"):  # a DatasetInfo carries root and names too
            data_root = data_root if data_root is not None else records_or_paths.root
            category_names = category_names or records_or_paths.category_names
            records_or_paths = records_or_paths.records
        items = gallery_items(list(records_or_paths))
        if not items:
            raise ValueError("the gallery is empty: no images to index")
        result = embed_images(
            encoder,
            [it["path"] for it in items],
            batch_size=batch_size,
            device=device,
            on_error=on_error,
            progress=progress,
            desc="indexing",
        )
        root = Path(data_root) if data_root is not None else None
        kept = [items[i] for i in result.kept]
        return cls(
            embeddings=result.embeddings,
            image_ids=[it["image_id"] for it in kept],
            paths=[Path(it["path"]) for it in kept],
            relative_paths=[relative_to_root(it["path"], root) for it in kept],
            captions=[list(it["captions"]) for it in kept],
            categories=[[int(c) for c in it["categories"]] for it in kept],
            category_names={int(k): str(v) for k, v in (category_names or {}).items()},
            data_root=root,
            checkpoint=CheckpointInfo(
                encoder.sha256, weights_path_str(encoder), config_dict(encoder)
            ),
            preprocessing=describe_preprocessing(encoder),
            skipped=[{"path": str(items[i]["path"]), "reason": why} for i, why in result.failures],
            encoder=encoder,
        )

    def save(self, path: str | Path) -> Path:
        """Write the index folder ``path`` (created if needed); returns it."""
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder}: exists and is not a folder; choose another --out")
        write_index(folder, self.embeddings, self._manifest())
        return folder

    @classmethod
    def load(cls, path: str | Path, *, expect: EncoderLike | None = None) -> EmbeddingIndex:
        """Load an index folder; with ``expect``, also check it was built by that encoder.

        Raises:
            FileNotFoundError: no such folder.
            CheckpointError: corrupt/partial index (naming the file) or, with ``expect``, stale.
        """
        emb, manifest, folder = read_index(Path(path))
        try:
            ckpt = manifest["checkpoint"]
            images = manifest["images"]
            index = cls(
                embeddings=emb,
                image_ids=[im["image_id"] for im in images],
                paths=[Path(im["path"]) for im in images],
                relative_paths=[im.get("relative_path") for im in images],
                captions=[list(im.get("captions", [])) for im in images],
                categories=[[int(c) for c in im.get("categories", [])] for im in images],
                category_names={
                    int(k): str(v) for k, v in manifest.get("category_names", {}).items()
                },
                data_root=Path(manifest["data_root"]) if manifest.get("data_root") else None,
                checkpoint=CheckpointInfo(
                    str(ckpt["sha256"]), str(ckpt["weights_path"]), dict(ckpt.get("config", {}))
                ),
                preprocessing=dict(manifest.get("preprocessing", {})),
                skipped=list(manifest.get("skipped", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFormatError(
                f"{folder / 'index.json'}: malformed index metadata ({exc})"
            ) from exc
        if expect is not None:
            index.check_compatible(expect)
            index.encoder = expect
        return index

    def check_compatible(self, encoder: EncoderLike) -> None:
        """Raise :class:`CheckpointError` unless ``encoder`` has the weights this index was built with."""
        if encoder.sha256 != self.checkpoint.sha256:
            raise CheckpointError(
                f"the index was built with checkpoint {self.checkpoint.weights_path} "
                f"(sha256 {self.checkpoint.sha256[:12]}...), but the encoder given is "
                f"{encoder.weights_path} (sha256 {encoder.sha256[:12]}...): the index is stale or "
                "for another model; rebuild it with `img2text ssl embed`"
            )

    # ---------------------------------------------------------------- search
    def find_similar(
        self,
        query: Query,
        k: int = 5,
        *,
        encoder: EncoderLike | None = None,
        device: str | torch.device | None = None,
    ) -> list[SearchResult]:
        """Top-``k`` most similar indexed images to one query (see :meth:`find_similar_batch`)."""
        return self.find_similar_batch([query], k, encoder=encoder, device=device)[0]

    def find_similar_batch(
        self,
        queries: Sequence[Query],
        k: int = 5,
        *,
        encoder: EncoderLike | None = None,
        device: str | torch.device | None = None,
    ) -> list[list[SearchResult]]:
        """Exact cosine top-``k`` for each query, best first.

        A query is an indexed image id (left out of its own results, so at most ``N - 1``
        results), an embedding vector (Shape: (D,)), or any image ``load_image`` accepts; images
        are embedded with ``encoder``, the one attached at build/load, or the one at the
        index's recorded weights path, after checking its sha256. A string is an id when it
        matches one (``"397133"`` matches the int id 397133), otherwise a path to an image.

        Raises:
            ValueError: ``k < 1``, an unknown id, or a vector of the wrong size.
            CheckpointError: the encoder does not match the index.
        """
        return search_index(self, queries, k, encoder=encoder, device=device)

    def row_of_id(self, image_id: int | str) -> int:
        """The embedding row of ``image_id`` (``"397133"`` also finds the int id 397133).

        Raises:
            ValueError: unknown id; the message names a few known ones.
        """
        if not isinstance(image_id, bool) and image_id in self._rows:
            return self._rows[image_id]
        if isinstance(image_id, str) and image_id in self._rows_by_text:
            return self._rows_by_text[image_id]
        examples = ", ".join(repr(i) for i in self.image_ids[:3])
        raise ValueError(
            f"unknown image id {image_id!r}; the index has {len(self)} images (e.g. {examples})"
        )

    def encoder_for_images(self, encoder: EncoderLike | None = None) -> EncoderLike:
        """The encoder that embeds new query images, checked against this index.

        Uses ``encoder``, else the attached one, else loads the recorded weights path.

        Raises:
            FileNotFoundError: no encoder given and the recorded weights are gone.
            CheckpointError: the encoder's sha256 differs from the index's.
        """
        if encoder is None:
            encoder = self.encoder
        if encoder is None:
            weights = Path(self.checkpoint.weights_path)
            if not weights.exists():
                raise FileNotFoundError(
                    f"the index's checkpoint {weights} is gone; pass the encoder "
                    "(--checkpoint) to embed new images"
                )
            encoder = load_checkpoint(weights)
        self.check_compatible(encoder)
        self.encoder = encoder
        return encoder

    def _manifest(self) -> dict[str, Any]:
        return {
            "data_root": str(self.data_root) if self.data_root is not None else None,
            "checkpoint": {
                "sha256": self.checkpoint.sha256,
                "weights_path": self.checkpoint.weights_path,
                "config": self.checkpoint.config,
            },
            "preprocessing": self.preprocessing,
            "category_names": {str(k): v for k, v in sorted(self.category_names.items())},
            "images": [
                {
                    "image_id": i,
                    "path": str(p),
                    "relative_path": r,
                    "captions": c,
                    "categories": cat,
                }
                for i, p, r, c, cat in zip(
                    self.image_ids,
                    self.paths,
                    self.relative_paths,
                    self.captions,
                    self.categories,
                    strict=True,
                )
            ],
            "skipped": self.skipped,
        }
