"""``EmbeddingIndex``: a gallery's embeddings with metadata and a search backend, saved/loaded/checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import CheckpointError, ConfigError, DatasetError
from core.search import ann
from core.search.embed import DEFAULT_BATCH_SIZE, OnError
from core.search.encoder import EncoderLike, config_dict, describe_preprocessing, load_checkpoint
from core.search.errors import IndexFormatError
from core.search.gallery import checkpoint_info, gallery_items, relative_to_root
from core.search.gallerybuild import CaptionImages, embed_gallery, source_entries, source_size
from core.search.gallerydb import CaptionSearch, GalleryRow
from core.search.manifest import NO_CHECKPOINT, CheckpointInfo, gallery_rows, head, index_fields
from core.search.persist import load_parts, save_parts
from core.search.portable import bundled_encoder
from core.search.pretrained import describe, encoder_record, reload_recorded
from core.search.recall import DEFAULT_TARGET_RECALL, make_backend
from core.search.searching import SearchMixin
from core.search.storage import data_path


@dataclass(eq=False)
class EmbeddingIndex(SearchMixin):
    """Unit-norm embeddings of a gallery, one row per image, what each image is, and a backend.

    Attributes:
        embeddings: Shape: (N, D), float32, rows L2-normalised (memory-mapped after
            ``load(mmap=True)``).
        image_ids, paths, relative_paths, captions, categories, sources: per row
            (``relative_paths`` is relative to ``data_root`` when the image lies under it;
            after ``load``, ``paths`` of image files are absolute, found relative to the index).
        content_hashes: per row, the sha256 of the image's encoded bytes as indexed (``None``
            when not known: indexes from arrays, Ray parts, or older indexes); a query with the
            same bytes is the same image (``core.workflows.find_neighbours``).
        category_names: COCO category id -> name.
        data_root: the dataset folder the gallery came from, if any.
        checkpoint: the encoder that made the embeddings.
        preprocessing: the eval transform, as recorded.
        skipped: ``{"path", "reason"}`` for images that failed to load at build time.
        ann_info: the backend's manifest entry: kind, tuned knob, measured recall@10.
        backend: ranks rows (``ExactBackend`` or ``FaissBackend``); exact when not given.
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
    sources: list[str | None] = field(default_factory=list)
    content_hashes: list[str | None] = field(default_factory=list)
    ann_info: dict[str, Any] = field(default_factory=lambda: {"kind": ann.EXACT, "recall_at_10": 1.0})
    backend: Any = field(default=None, repr=False)
    generated: list[list[str]] = field(default_factory=list)  # per row: its captions a captioner wrote

    def __post_init__(self) -> None:
        n = self.embeddings.shape[0]
        # NumPy / pandas scalars become the Python ints and strings they stand for: SQLite would
        # store an np.int64 as an 8-byte blob, and results must give back the ids that went in.
        self.image_ids = [plain_id(i) for i in self.image_ids]
        self.sources = self.sources or [None] * n
        self.generated = self.generated or [[] for _ in range(n)]
        self.content_hashes = self.content_hashes or [None] * n
        columns = (self.image_ids, self.paths, self.relative_paths, self.captions, self.categories,
                   self.sources, self.generated, self.content_hashes)
        if self.embeddings.ndim != 2 or {len(x) for x in columns} != {n}:
            raise IndexFormatError(f"index metadata does not have one entry per embedding row ({n} rows)")
        self._rows: dict[Any, int] = {}
        for row, image_id in enumerate(self.image_ids):
            if image_id in self._rows:
                raise IndexFormatError(f"duplicate image id {image_id!r} in the index: every image needs its own id")
            self._rows[image_id] = row
        # Ids typed on a command line arrive as strings; let "397133" find the int id 397133.
        self._rows_by_text = {str(i): r for i, r in self._rows.items()}
        self.backend = self.backend or ann.ExactBackend(self.embeddings)
        self._text: CaptionSearch | None = None
        self._gallery_file: Path | None = None
        self._folder: Path | None = None  # the folder it was loaded from (its shipped encoder/)

    @property
    def kind(self) -> str:
        """``"exact"`` or the FAISS factory string the index was built with."""
        return str(self.ann_info.get("kind", ann.EXACT))

    @property
    def recall_at_10(self) -> float:
        """Recall@10 measured at build time on held-out queries (1.0 for exact search)."""
        return float(self.ann_info.get("recall_at_10", 1.0))

    def same_contents(self, other: EmbeddingIndex) -> bool:
        """True when both indexes hold identical arrays, metadata and backend settings."""
        return (
            torch.equal(self.embeddings, other.embeddings)
            and self._head() == other._head()
            and list(self._gallery_rows()) == list(other._gallery_rows())
        )

    # ---------------------------------------------------------------- building and storage
    @classmethod
    def from_arrays(
        cls,
        embeddings: Any,
        ids: Sequence[int | str],
        *,
        paths: Sequence[str | Path] | None = None,
        captions: Sequence[Sequence[str] | str] | None = None,
        kind: str = ann.AUTO,
        memory_budget: str | int | None = None,
        target_recall: float = DEFAULT_TARGET_RECALL,
        seed: int = 0,
    ) -> EmbeddingIndex:
        """An index over given vectors (normalised here), e.g. embeddings made elsewhere.

        Args:
            embeddings: Shape: (N, D); tensor or array.
            ids: one id per row (ints or strings, unique).
            paths, captions: per row (a caption may be a string or a list of strings).
            kind: ``"exact"``, ``"auto"`` or a FAISS factory string (see :mod:`core.search.ann`).
            memory_budget: for ``"auto"``, e.g. ``"4GB"``.
            target_recall: recall@10 the search-time knob is tuned to reach.

        Raises:
            ValueError: lengths differ, duplicate ids, zero rows. IndexConfigError: bad kind.
        """
        emb = F.normalize(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)), dim=1)
        n = emb.shape[0]
        caps = [[c] if isinstance(c, str) else list(c) for c in captions] if captions else [[]] * n
        index = cls(
            embeddings=emb, image_ids=list(ids), paths=[Path(p) for p in paths] if paths else
            [Path(str(i)) for i in ids], relative_paths=[None] * n, captions=caps,
            categories=[[] for _ in range(n)], category_names={}, data_root=None,
            checkpoint=NO_CHECKPOINT, preprocessing={"l2_normalized": True},
        )
        return index.with_backend(kind, memory_budget=memory_budget, target_recall=target_recall,
                                  seed=seed)

    def with_backend(
        self, kind: str = ann.AUTO, *, memory_budget: str | int | None = None,
        target_recall: float = DEFAULT_TARGET_RECALL, seed: int = 0,
    ) -> EmbeddingIndex:
        """(Re)build the search backend in place (training and tuning a FAISS one); returns self."""
        if len(self) == 0:
            raise DatasetError("the gallery is empty: no images to index; check the folder or source you passed")
        self.backend, self.ann_info = make_backend(
            self.embeddings, kind, memory_budget=memory_budget, target_recall=target_recall, seed=seed
        )
        return self

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
        kind: str = ann.AUTO,
        memory_budget: str | int | None = None,
        target_recall: float = DEFAULT_TARGET_RECALL,
        caption_images: CaptionImages | None = None,
    ) -> EmbeddingIndex:
        """Embed a gallery and index it.

        Args:
            records_or_paths: a ``DatasetInfo``, a list of ``ImageRecord`` or of paths, or a batch
                source from ``core.datasets.open_source`` (path list, tar shards, parquet), read
                item by item (see :mod:`core.search.gallerybuild`).
            caption_images: captions each embedded image (e.g. a wrapped ``core.Captioner``);
                its captions are added to the image's captions, for :meth:`find_text`.

        Raises:
            ValueError: empty gallery, duplicate ids, or every image failed.
            InvalidImageError: an image failed and ``on_error="raise"``.
            IndexConfigError: bad ``kind`` / ``memory_budget`` / ``target_recall``.
        """
        if hasattr(records_or_paths, "records"):  # a DatasetInfo carries root and names too
            data_root = data_root if data_root is not None else records_or_paths.root
            category_names = category_names or records_or_paths.category_names
            records_or_paths = records_or_paths.records
        entries, total = _gallery_entries(records_or_paths, progress)
        result = embed_gallery(encoder, entries, total=total, batch_size=batch_size, device=device,
                               on_error=on_error, progress=progress, caption_images=caption_images)
        root = Path(data_root) if data_root is not None else None
        kept = result.items
        index = cls(
            embeddings=result.embeddings,
            image_ids=[it["image_id"] for it in kept],
            paths=[Path(it["path"]) for it in kept],
            relative_paths=[relative_to_root(it["path"], root) for it in kept],
            captions=[list(it["captions"]) for it in kept],
            categories=[[int(c) for c in it["categories"]] for it in kept],
            sources=[it.get("source") for it in kept],
            generated=[list(it.get("generated", [])) for it in kept],
            content_hashes=[it.get("sha256") for it in kept],
            category_names={int(k): str(v) for k, v in (category_names or {}).items()},
            data_root=root,
            checkpoint=checkpoint_info(encoder),
            preprocessing=describe_preprocessing(encoder),
            skipped=result.skipped,
            encoder=encoder,
        )
        return index.with_backend(kind, memory_budget=memory_budget, target_recall=target_recall)

    def save(self, path: str | Path) -> Path:
        """Write the index folder ``path`` (created if needed), old-or-new under a crash; returns it."""
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder}: exists and is not a folder; choose another --out")
        save_parts(folder, self.embeddings, self._head(), self._gallery_rows(), self.backend)
        return folder

    @classmethod
    def load(
        cls, path: str | Path, *, expect: EncoderLike | None = None, mmap: bool = False,
        verify: bool = True,
    ) -> EmbeddingIndex:
        """Load an index folder; with ``expect``, also check it was built by that encoder.

        Args:
            mmap: memory-map the vectors (and FAISS codes) instead of reading them into memory.
            verify: check every data file's sha256 against the manifest (reads each once).

        Raises:
            FileNotFoundError: no such folder.
            CheckpointError: corrupt/partial index (naming the file) or, with ``expect``, stale.
        """
        parts = load_parts(Path(path), mmap=mmap, verify=verify)
        index = cls(**index_fields(parts), backend=parts.backend)
        index._folder = parts.folder
        if "gallery" in parts.manifest:
            index._gallery_file = data_path(parts.folder, parts.manifest, "gallery")
        if expect is not None:
            index.check_compatible(expect)
            index.encoder = expect
        return index

    def check_compatible(self, encoder: EncoderLike) -> None:
        """Raise :class:`CheckpointError` unless ``encoder`` has the weights this index was built with."""
        if encoder.sha256 != self.checkpoint.sha256:
            built = describe(self.checkpoint.config, self.checkpoint.sha256, self.checkpoint.weights_path)
            given = describe(config_dict(encoder), encoder.sha256, str(encoder.weights_path))
            raise CheckpointError(
                f"the index was built with {built}, but the encoder given is {given}: the index "
                "is stale or for another model; search it with the encoder it was built with, or "
                "rebuild it with `img2text ssl embed`"
            )

    def encoder_for_images(self, encoder: EncoderLike | None = None) -> EncoderLike:
        """The encoder that embeds new query images, checked against this index.

        Uses ``encoder``, else the attached one, else loads the recorded weights path (or,
        when that is gone, the copy shipped in the index folder: :mod:`core.search.portable`).

        Raises:
            FileNotFoundError: no encoder given and the recorded weights are gone.
            CheckpointError: the encoder's sha256 differs from the index's.
        """
        encoder = encoder or self.encoder
        if encoder is None and encoder_record(self.checkpoint.config) is not None:
            encoder = reload_recorded(self.checkpoint.config, self.checkpoint.weights_path)
        if encoder is None:
            weights = Path(self.checkpoint.weights_path)
            if not (self.checkpoint.weights_path and weights.exists()):
                weights = bundled_encoder(self._folder) or weights  # a portable copy's encoder/
            if not self.checkpoint.weights_path or not weights.exists():
                raise FileNotFoundError(
                    f"the index's checkpoint {weights} is gone; pass the encoder "
                    "(--checkpoint) to embed new images"
                )
            encoder = load_checkpoint(weights)
        self.check_compatible(encoder)
        self.encoder = encoder
        return encoder

    # ---------------------------------------------------------------- internals
    def _head(self) -> dict[str, Any]:
        return head(self)

    def _gallery_rows(self) -> list[GalleryRow]:
        return gallery_rows(self)


def plain_id(image_id: Any) -> int | str:
    """``image_id`` as a Python ``int`` or ``str`` (NumPy and pandas scalars are unwrapped).

    Raises:
        IndexFormatError: anything else (a float, bytes, None, a bool): ids are ints or strings.
    """
    if isinstance(image_id, np.generic):
        image_id = image_id.item()
    if isinstance(image_id, str):
        return str(image_id)  # np.str_ -> str
    if isinstance(image_id, int) and not isinstance(image_id, bool):
        return int(image_id)
    raise IndexFormatError(
        f"image id {image_id!r} is a {type(image_id).__name__}: ids must be ints or strings "
        "(convert them, e.g. ids.astype(int) or ids.astype(str))"
    )


def _gallery_entries(records_or_paths: Any, progress: bool | None) -> tuple[Any, int]:
    """What :meth:`EmbeddingIndex.build` embeds, and how many (0: unknown, no progress total).

    Raises:
        ValueError: a listed gallery is empty.
    """
    if hasattr(records_or_paths, "shards"):  # an ImageSource: streamed, never listed whole
        return source_entries(records_or_paths), source_size(records_or_paths) if progress is not False else 0
    entries = gallery_items(list(records_or_paths))
    if not entries:
        raise DatasetError("the gallery is empty: no images to index; check the folder or source you passed")
    return entries, len(entries)
