"""Event handlers of the Gradio app: plain functions of plain values over ``core.workflows``."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from core import Img2TextError, InvalidImageError
from core import workflows as wf
from core.captioning import DECODING_MODES, decoding_kwargs, for_command
from gradio_app.services import Services

GRADIO_COMMAND = "python -m gradio_app"  # how the fix-it texts start the app

DECODING = tuple(DECODING_MODES)  # the labels every front end shows
UserError = (Img2TextError, ValueError)  # errors whose message is written for the user
DOWNLOADS_KEPT = 8  # batch CSV/JSONL/zip triples kept in the app's download folder (Gradio copies them)


def generation_kwargs(decoding: str, num_beams: float = 4, max_new_tokens: float = 15,
                      temperature: float = 1.0, top_p: float = 1.0, seed: float | None = -1) -> dict[str, Any]:
    """The UI's generation panel -> ``**generation`` keywords of ``Captioner.caption_batch``."""
    return decoding_kwargs(decoding, num_beams=int(num_beams), max_new_tokens=int(max_new_tokens),
                           temperature=temperature, top_p=top_p, seed=None if seed is None else int(seed))


def panel_settings(*settings: Any) -> tuple[dict[str, Any], str, str | None]:
    """The whole panel ``(decoding, beams, max tokens, temperature, top-p, seed, precision, model,
    prompt text, prompt task)`` -> (generation keywords with the prompt, precision, model).
    Left out by an API caller: float32, the start-up model, the family's default prompt."""
    kwargs = generation_kwargs(*settings[:6])
    precision = str(settings[6]) if len(settings) > 6 and settings[6] else "float32"
    model = str(settings[7]) if len(settings) > 7 and settings[7] else None
    if (prompt := wf.chosen_prompt(*settings[8:10])) is not None:
        kwargs["prompt"] = prompt
    return kwargs, precision, model


def error_html(message: str) -> str:
    return f'<div class="i2t-error" role="alert">{html.escape(message).replace(chr(10), "<br>")}</div>'


def note_html(message: str, warning: str | None = None) -> str:
    out = f'<div class="i2t-note">{html.escape(message)}</div>' if message else ""
    return out + (f'<div class="i2t-warn" role="status">{html.escape(warning)}</div>' if warning else "")


def caption_text(services: Services, image: str | None, *settings: Any) -> str:
    """One image's caption. Loads the upload in this request's thread, then joins a model call.

    Raises:
        Img2TextError / ValueError: no or unusable image, bad settings, model unavailable.
    """
    if image is None:
        raise ValueError("no image: upload one (or pick an example) first")
    kwargs, precision, model = panel_settings(*settings)
    loaded = services.load(image)
    services.models.loader(precision, model=model).get()  # a remembered failure answers at once
    return services.batcher(precision, model).caption(loaded, **kwargs)


def caption(services: Services, api: bool):  # type: ignore[no-untyped-def]
    """``/caption`` (``api``): the caption or ``gr.Error`` with the reason (gradio_client raises it);
    the page (upload, button, example): ``(caption, message box, image slot)``, an error going to
    the message box and an unusable image out of the slot (the browser would show a broken icon)."""
    def run(image: str | None, *settings: Any) -> Any:
        try:
            text = caption_text(services, image, *settings)
        except UserError as exc:
            if api:
                raise gr.Error(gradio_fix(str(exc)), print_exception=False) from exc
            return "", error_html(gradio_fix(str(exc))), (None if isinstance(exc, InvalidImageError) else gr.skip())
        return text if api else (text, "", gr.skip())
    return run


def query_changed(services: Services):  # type: ignore[no-untyped-def]
    """Similar images: a new upload (or a cleared slot) ends a picked query, so the Gallery image
    choice clears; an unusable upload leaves the slot with the reason in the message box.
    Returns ``(query slot, picked id, gallery image choice, message box)``."""
    def changed(query: str | None) -> tuple[Any, None, Any, str]:
        if query is not None:
            try:
                services.load(query)
            except UserError as exc:
                return None, None, gr.update(value=None), error_html(str(exc))
        return gr.skip(), None, gr.update(value=None), ""
    return changed


def items(hits: list[Any]) -> list[tuple[Any, str]]:
    """``SearchResult``s (or their dicts) -> gallery items ``(path or image, "#rank · id · score · caption")``."""
    pictures = [(wf.hit_picture(h), wf.hit_label(h)) for h in hits]
    return [(picture, label) for picture, label in pictures if picture is not None]


def neighbours(services: Services):  # type: ignore[no-untyped-def]
    """Caption tab: the uploaded image's nearest gallery images in the first index, with its note."""
    def find(image: str | None, caption: str | None) -> tuple[list[tuple[str, str]], str]:
        if image is None or not caption:  # no caption: the message box already says why
            return [], ""
        found = wf.search_gallery(services.indexes, None, services.config.neighbours, upload=image, **services.limits)
        return items(found.hits), note_html(found.note or f"No neighbours: {found.error}", found.warning)
    return find


def payload(answer: wf.SimilarAnswer) -> dict[str, Any]:
    """``/similar``'s JSON (the path goes out as image_path: gradio_client downloads a "path" key)."""
    results = [{"image_path": str(h.path), **{k: v for k, v in h.to_dict().items() if k != "path"}}
               for h in answer.hits]
    return {"results": results, "error": answer.error, "query": answer.query, "note": answer.note,
            "same_image": None if answer.same is None else answer.same.image_id, "warning": answer.warning,
            "search": answer.search, "text_mode": answer.text_mode}


def similar(services: Services, words: bool = False):  # type: ignore[no-untyped-def]
    """``/similar`` (an upload, or the gallery image picked into the query slot) and ``/find_text``
    (``words``: caption words) -> ranked results; a user's mistake is the answer's ``error``."""
    def search(query: str | None, k: float, index_choice: str | None = None, image_id: str | None = None) -> dict:
        if words:
            return payload(wf.search_gallery(services.indexes, index_choice, k, text=query or "", **services.limits))
        return payload(wf.search_gallery(services.indexes, index_choice, k, upload=query, image_id=image_id,
                                         **services.limits))
    return search


def render_results(answer: dict[str, Any] | None) -> tuple[list[tuple[str, str]], list[list[Any]], str]:
    """``/similar``'s answer -> gallery items, table rows and an in-page message."""
    answer = answer or {}
    if answer.get("error"):
        return [], [], error_html(answer["error"])
    rows = [list(row.values()) for row in wf.result_rows(answer.get("results", []))]
    return items(answer.get("results", [])), rows, note_html(answer.get("note", ""), answer.get("warning"))


def pick_choices(services: Services, index_choice: str | None, text: str = "") -> Any:
    """The bounded list of gallery images matching ``text`` (id, file name or caption words)."""
    try:
        choices = wf.gallery_matches(services.indexes.get(index_choice), text, services.config.pick_limit)
    except (*UserError, OSError):
        choices = []
    return gr.update(choices=choices, value=None)


def pick(services: Services, index_choice: str | None, image_id: str | None) -> tuple[Any, Any]:
    """A picked gallery image becomes the query: its picture in the query slot, its id remembered."""
    picture = wf.gallery_picture(services.indexes, index_choice, image_id)
    return (picture, image_id) if picture is not None else (gr.skip(), gr.skip())


def words_box(services: Services, index_choice: str | None) -> dict[str, Any]:
    """The words box: usable when the index has captions or a text tower, else it says why."""
    why = wf.words_unavailable(services.indexes, index_choice)
    return {"interactive": why is None, "info": why or wf.words_info(services.indexes, index_choice),
            "placeholder": None if why else "e.g. a green circle"}


def index_changed(services: Services, index_choice: str | None, picked: str | None) -> tuple[Any, Any, Any]:
    """Another index: its words box; a gallery image picked from the old one stops being the query."""
    return gr.update(**words_box(services, index_choice)), None, (None if picked else gr.skip())


def _download_folder() -> Path:
    """One folder per server process for batch downloads, holding the newest few files only."""
    folder = Path(tempfile.gettempdir()) / f"img2text-downloads-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    for old in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)[: -3 * (DOWNLOADS_KEPT - 1) or None]:
        old.unlink(missing_ok=True)
    return folder


def batch(services: Services):  # type: ignore[no-untyped-def]
    """Batch tab: caption many uploads with progress; table (with thumbnails) and downloads."""
    def run(files: list[str] | None, *settings: Any, progress: Any = None):  # type: ignore[no-untyped-def]
        files = list(files or [])
        if why := wf.batch_problem(len(files), services.config.max_batch_files):
            return [], None, None, error_html(why), None
        try:
            kwargs, precision, model = panel_settings(*settings)
            rows = wf.caption_uploads(
                services.models.loader(precision, model=model).get(), [(Path(f).name, f) for f in files],
                batch_size=services.config.batch_size,
                max_pixels=services.config.max_pixels, max_bytes=services.config.max_upload_bytes,
                progress=None if progress is None else lambda d, t: progress((d, t), desc="Captioning", unit="images"),
                **kwargs)
        except UserError as exc:
            return [], None, None, error_html(str(exc)), None
        records = [r.record for r in rows]
        table = [[f"![]({r.thumbnail})" if r.thumbnail else "", r.record.path, r.record.caption, r.record.error or ""]
                 for r in rows]
        folder, tag = _download_folder(), os.urandom(4).hex()
        paths = []
        for download in wf.batch_downloads(records):  # CSV, JSONL, zip of sidecar caption files
            path = folder / download.file_name.replace("captions", f"captions-{tag}", 1)
            path.write_bytes(download.data)
            paths.append(str(path))
        return table, paths[0], paths[1], note_html(wf.batch_summary(records)), paths[2]
    return run


def run_view(services: Services):  # type: ignore[no-untyped-def]
    """Training run tab: loss curve, per-epoch metrics, a summary, sample retrievals and the index's
    collapse warning next to them."""
    def show(choice: str | None):  # type: ignore[no-untyped-def]
        try:
            info = services.run(choice)
        except ValueError as exc:
            return None, [], error_html(str(exc)), "", []
        loss = Image.open(info.loss_png).convert("RGB") if info.loss_png is not None else None  # closes after load
        s = wf.run_summary(info)
        text = f"{s.path}\n{s.settings}\n" if s.settings else f"{s.path}\n"
        if s.loss is not None:
            text += (f"last epoch {s.epochs}: loss {s.loss:.4f}, pos_top1 {s.pos_top1 or 0:.3f}, "
                     f"emb_std {s.emb_std or 0:.4f}, {s.precision_label} {s.precision}")
        summary = f'<div class="i2t-note">{html.escape(text).replace(chr(10), "<br>")}</div>'
        if s.problems:
            summary += error_html("; ".join(s.problems))
        samples: list[tuple[str, str]] = []
        index = services.runs_index(info)
        for sample in wf.sample_retrievals(index) if index is not None else []:
            samples += [(str(sample.path), f"query {sample.image_id}"), *items(sample.hits)]
        warning = note_html("", wf.collapse_warning(index)) if index is not None else ""
        return loss, wf.history_rows(info), summary, warning, [(p, c) for p, c in samples if Path(p).is_file()]
    return show


def gradio_fix(message: str) -> str:
    """Core's fix-it text with its commands written for this app (``python -m gradio_app --model ...``)."""
    return for_command(message, GRADIO_COMMAND)


def model_status(services: Services, model: str | None = None, precision: str | None = None) -> tuple[str, Any, Any]:
    """The model bar of the session's (model, precision) choice (choosing one starts its load): its
    stage and seconds while loading or compiling, failed with the fix; Retry shows on failure; the
    timer ticks until nothing more happens. An unreadable choice: its reason, no polling."""
    try:
        loader = services.models.loader(precision or services.config.precision, model=model)
    except UserError as exc:
        return error_html(gradio_fix(str(exc))), gr.update(visible=False), gr.Timer(active=False)
    state = loader.state
    if state.status == "failed":
        return error_html(f"{state.text}\n{gradio_fix(state.message)}"), gr.update(visible=True), gr.Timer(active=True)
    return note_html(state.text), gr.update(visible=False), gr.Timer(active=not state.settled)


def retry_model(services: Services, model: str | None = None, precision: str | None = None) -> tuple[str, Any, Any]:
    try:
        services.models.loader(precision or services.config.precision, model=model).retry()
    except UserError:
        pass  # the bar says why
    return model_status(services, model, precision)


def prompt_boxes(model: str | None) -> tuple[Any, Any]:
    """The prompt text box and the task choice for a picked model: the family's default in the
    one it uses (the task choice for Florence-2), both hidden for a family without prompts or an
    unreadable model (its reason is in the model bar)."""
    field, _ = wf.picked_prompt_field(model)
    if field is None or not field.visible:
        return gr.update(visible=False, value=""), gr.update(visible=False, value="")
    if field.choices:
        return gr.update(visible=False, value=""), gr.update(visible=True, choices=list(field.choices),
                                                             value=field.default, info=field.hint)
    return gr.update(visible=True, value=field.default or "", info=field.hint), gr.update(visible=False, value="")


def model_changed(services: Services, model: str | None, precision: str | None) -> tuple[Any, ...]:
    """A new pick: its prompt boxes, and the bar (which starts its loading in the background)."""
    return (*prompt_boxes(model or services.config.model), *model_status(services, model, precision))
