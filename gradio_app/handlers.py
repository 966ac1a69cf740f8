"""Event handlers of the Gradio app: plain functions of plain values, easy to test without a server."""

from __future__ import annotations

import html
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from core import InvalidImageError, ModelUnavailableError
from core.captioning.generation import DECODING_MODES, decoding_kwargs
from core.captioning.outputs import CaptionRecord, to_string
from gradio_app.services import ERROR_PREFIX, Services

DECODING = tuple(DECODING_MODES)  # the labels every front end shows
DEFAULT_BEAMS = 4
DEFAULT_MAX_TOKENS = 15  # = the model card's max_length 16 minus the start token
THUMB = 160


def generation_kwargs(
    decoding: str, num_beams: float, max_new_tokens: float, temperature: float, top_p: float,
    seed: float | None,
) -> dict[str, Any]:
    """The UI's generation panel -> ``**generation`` keywords of ``Captioner.caption_batch``."""
    return decoding_kwargs(decoding, num_beams=int(num_beams), max_new_tokens=int(max_new_tokens),
                           temperature=temperature, top_p=top_p,
                           seed=None if seed is None else int(seed))


def _error_html(message: str) -> str:
    lines = html.escape(message).replace("\n", "<br>")
    return f'<div class="i2t-error" role="alert">{lines}</div>'


def caption_batch(services: Services) -> Callable[..., tuple[list[str]]]:
    """The batched ``/caption`` function: lists in, one list of captions (or errors) out."""

    def caption(
        image: list[str | None], decoding: list[str], num_beams: list[float],
        max_new_tokens: list[float], temperature: list[float], top_p: list[float],
        seed: list[float | None],
    ) -> tuple[list[str]]:
        # Batched: every argument is a list with one entry per queued request.
        images = image
        out: list[str] = [""] * len(images)
        groups: dict[tuple, list[tuple[int, Image.Image]]] = {}
        for i, path in enumerate(images):
            if path is None:
                out[i] = ERROR_PREFIX + "no image: upload one (or pick an example) first"
                continue
            try:
                kwargs = generation_kwargs(decoding[i], num_beams[i], max_new_tokens[i],
                                           temperature[i], top_p[i], seed[i])
                loaded = services.load_upload(path)
            except InvalidImageError as exc:
                out[i] = ERROR_PREFIX + f"{Path(exc.source).name}: {exc.reason}"
                continue
            except (TypeError, ValueError) as exc:
                out[i] = ERROR_PREFIX + str(exc)
                continue
            groups.setdefault(tuple(sorted(kwargs.items())), []).append((i, loaded))
        for key, items in groups.items():
            try:
                results = services.captioner().caption_batch(
                    [im for _, im in items], batch_size=len(items), errors="return",
                    max_pixels=services.config.max_pixels, **dict(key)
                )
            except ModelUnavailableError as exc:
                results = [ERROR_PREFIX + str(exc)] * len(items)
            except ValueError as exc:  # invalid generation settings sent through the API
                results = [ERROR_PREFIX + str(exc)] * len(items)
            for (i, _), result in zip(items, results, strict=True):
                out[i] = result if isinstance(result, str) else ERROR_PREFIX + str(result)
        return (out,)

    return caption


def caption_status(caption: str | None) -> tuple[str, Any]:
    """In the page, an error moves from the caption box into a message box."""
    if caption and caption.startswith(ERROR_PREFIX):
        return _error_html(caption.removeprefix(ERROR_PREFIX)), ""
    return "", gr.skip()


def result_dict(hit: Any) -> dict[str, Any]:
    """A ``SearchResult`` as JSON for ``/similar``.

    The path is sent as ``image_path``: gradio_client would take a ``path`` key for a file
    to download.
    """
    row = hit.to_dict()
    row["image_path"] = row.pop("path")
    return row


def result_items(results: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """``/similar`` results -> gallery items ``(path, label)``."""
    items = []
    for r in results:
        caption = r["captions"][0] if r.get("captions") else str(r["image_id"])
        items.append((r["image_path"], f"#{r['rank']} · {r['score']:.3f} · {caption}"))
    return [(p, label) for p, label in items if Path(p).is_file()]


def neighbours(services: Services) -> Callable[[str | None, str | None], list[tuple[str, str]]]:
    """Caption tab: the uploaded image's nearest gallery images (empty on any problem)."""

    def find(image: str | None, caption: str | None) -> list[tuple[str, str]]:
        if image is None or (caption or "").startswith(ERROR_PREFIX):
            return []
        try:
            index = services.index(None)
            hits = index.find_similar(services.load_upload(image), k=services.config.neighbours)
        except Exception:  # neighbours are a bonus; the caption is already shown
            return []
        return result_items([result_dict(h) for h in hits])

    return find


def similar(services: Services) -> Callable[..., dict[str, Any]]:
    """``/similar``: one image (or an indexed image id) and k in, ranked results out."""

    def search(image: str | None, k: float, index_choice: str | None = None,
               image_id: str | None = None) -> dict[str, Any]:
        query: Any
        try:
            index = services.index(index_choice)
            if image is not None:
                query, label = services.load_upload(image), "the uploaded image"
            elif image_id not in (None, ""):
                query, label = image_id, f"gallery image {image_id}"
            else:
                return {"results": [], "error": "no query: upload an image or pick one from the gallery"}
            hits = index.find_similar(query, k=max(1, int(k)))
        except InvalidImageError as exc:
            return {"results": [], "error": f"{Path(exc.source).name}: {exc.reason}"}
        except Exception as exc:
            return {"results": [], "error": f"{type(exc).__name__}: {exc}"}
        return {"results": [result_dict(h) for h in hits], "error": None, "query": label}

    return search


def render_results(payload: dict[str, Any] | None) -> tuple[list[tuple[str, str]], list[list[Any]], str]:
    """``/similar``'s answer -> gallery items, table rows and an in-page message."""
    payload = payload or {}
    if payload.get("error"):
        return [], [], _error_html(payload["error"])
    results = payload.get("results", [])
    rows = [[r["rank"], str(r["image_id"]), round(r["score"], 4), " / ".join(r.get("captions", [])[:2])]
            for r in results]
    query = html.escape(str(payload.get("query") or ""))
    note = (f'<div class="i2t-note">{len(results)} most similar to {query}</div>' if results
            else '<div class="i2t-note">No results.</div>')
    return result_items(results), rows, note


def browse_items(services: Services, index_choice: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    """The first images of an index, to pick a query from; also their ids."""
    try:
        index = services.index(index_choice)
    except Exception:
        return [], []
    n = min(len(index), services.config.browse_limit)
    items, ids = [], []
    for row in range(n):
        path = Path(index.paths[row])
        if path.is_file():
            caption = index.captions[row][0] if index.captions[row] else str(index.image_ids[row])
            items.append((str(path), caption))
            ids.append(str(index.image_ids[row]))
    return items, ids


def batch(services: Services) -> Callable[..., tuple[list[tuple[Image.Image, str]], list[list[str]], str | None, str | None, str]]:
    """Batch tab: caption many uploads in chunks, with progress; table and downloads."""

    def run(files: list[str] | None, decoding: str, num_beams: float, max_new_tokens: float,
            temperature: float, top_p: float, seed: float | None, progress: Any = None):
        files = list(files or [])
        if not files:
            return [], [], None, None, _error_html("Upload one or more images first.")
        if len(files) > services.config.max_batch_files:
            return [], [], None, None, _error_html(
                f"{len(files)} files: the limit is {services.config.max_batch_files} per run.")
        try:
            kwargs = generation_kwargs(decoding, num_beams, max_new_tokens, temperature, top_p, seed)
            captioner = services.captioner()
        except (ModelUnavailableError, ValueError) as exc:
            return [], [], None, None, _error_html(str(exc))
        slots: list[CaptionRecord | None] = [None] * len(files)  # input order, even with equal names
        thumbs: list[tuple[Image.Image, str]] = []
        chunk = services.config.max_batch_size
        if progress is not None:
            progress((0, len(files)), desc="Captioning", unit="images")
        for start in range(0, len(files), chunk):
            loaded: list[tuple[int, Image.Image]] = []
            for i in range(start, min(start + chunk, len(files))):
                try:
                    loaded.append((i, services.load_upload(files[i])))
                except InvalidImageError as exc:
                    slots[i] = CaptionRecord(Path(files[i]).name, "", exc.reason)
            if loaded:
                captions = captioner.caption_batch([im for _, im in loaded], batch_size=len(loaded),
                                                   errors="return", max_pixels=services.config.max_pixels,
                                                   **kwargs)
                for (i, im), cap in zip(loaded, captions, strict=True):
                    name = Path(files[i]).name
                    if isinstance(cap, str):
                        slots[i] = CaptionRecord(name, cap)
                    else:
                        slots[i] = CaptionRecord(name, "", str(cap))
                    thumb = im.copy()
                    thumb.thumbnail((THUMB, THUMB))
                    thumbs.append((thumb, f"{name}: {cap}" if isinstance(cap, str) else name))
            if progress is not None:
                progress((min(start + chunk, len(files)), len(files)), desc="Captioning", unit="images")
        records = [r for r in slots if r is not None]
        rows = [[r.path, r.caption, r.error or ""] for r in records]
        out_dir = Path(tempfile.mkdtemp(prefix="img2text-batch-"))
        csv_path, jsonl_path = out_dir / "captions.csv", out_dir / "captions.jsonl"
        csv_path.write_text(to_string(records, "csv"), encoding="utf-8")
        jsonl_path.write_text(to_string(records, "jsonl"), encoding="utf-8")
        failed = sum(1 for r in records if not r.ok)
        note = f'<div class="i2t-note">{len(records) - failed} captioned, {failed} failed.</div>'
        return thumbs, rows, str(csv_path), str(jsonl_path), note

    return run


HISTORY_COLUMNS = ("epoch", "loss", "pos_top1", "emb_std", "precision_at_k", "seconds")


def run_view(services: Services) -> Callable[[str | None], tuple[Image.Image | None, list[list[Any]], str, list[tuple[str, str]]]]:
    """Training run tab: loss curve, per-epoch metrics, a summary and sample retrievals."""

    def show(choice: str | None):
        try:
            info = services.run(choice)
        except ValueError as exc:
            return None, [], _error_html(str(exc)), []
        loss = None
        if info.loss_png is not None:
            with Image.open(info.loss_png) as im:
                loss = im.convert("RGB")
        rows = [[_fmt(h.get(c)) for c in HISTORY_COLUMNS] for h in info.history if isinstance(h, dict)]
        summary = _run_summary(info)
        return loss, rows, summary, _sample_retrievals(services, info)

    return show


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return "" if value is None else value


def _run_summary(info: Any) -> str:
    cfg = info.config.get("ssl_config", {}) if isinstance(info.config, dict) else {}
    parts = [f"<b>{html.escape(str(info.path))}</b>"]
    if cfg:
        parts.append(
            f"backbone {html.escape(str(cfg.get('backbone')))}, {cfg.get('img_size')} px, "
            f"batch {cfg.get('batch_size')}, temperature {cfg.get('temperature')}, "
            f"epochs {info.config.get('epoch')}/{cfg.get('num_epochs')}")
    if info.history:
        last = info.history[-1]
        prec = last.get("precision_at_k")
        parts.append(
            f"last epoch: loss {last.get('loss', float('nan')):.4f}, pos_top1 {last.get('pos_top1', 0):.3f}, "
            f"emb_std {last.get('emb_std', 0):.4f}, held-out P@{last.get('eval_k', 'k')} "
            + ("-" if prec is None else f"{prec:.3f}"))
    text = "<br>".join(parts)
    out = f'<div class="i2t-note">{text}</div>'
    if info.problems:
        out += _error_html("; ".join(info.problems))
    return out


def _sample_retrievals(services: Services, info: Any, queries: int = 3, k: int = 4) -> list[tuple[str, str]]:
    """Query, then its top-k, for a few images of an index built from this run's weights."""
    if info.weights is None:
        return []
    from core.search.storage import sha256_file

    digest = sha256_file(info.weights)
    for choice in services.index_choices:
        try:
            index = services.index(choice)
        except Exception:
            continue
        if index.checkpoint.sha256 != digest:
            continue
        items: list[tuple[str, str]] = []
        for image_id in index.image_ids[:queries]:
            row = index.row_of_id(image_id)
            items.append((str(index.paths[row]), f"query {image_id}"))
            hits = index.find_similar(image_id, k=k)
            items.extend(result_items([result_dict(h) for h in hits]))
        return [(p, label) for p, label in items if Path(p).is_file()]
    return []
