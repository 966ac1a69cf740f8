"""``build_app(config)``: the Gradio Blocks UI (Caption, Batch, Similar images, Training run)."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from core.workflows import HISTORY_COLUMNS, PRECISION_HELP, PRECISIONS, example_files
from gradio_app import handlers
from gradio_app.config import AppConfig
from gradio_app.services import Services

CSS = """
.i2t-error { border: 1px solid #e11d48; background: #fff1f2; color: #9f1239; padding: 10px 12px;
             border-radius: 8px; white-space: normal; font-size: 0.95em; }
.i2t-warn { border: 1px solid #d97706; background: #fffbeb; color: #92400e; padding: 8px 12px;
            border-radius: 8px; font-size: 0.95em; }
.i2t-note { color: #475569; padding: 6px 2px; font-size: 0.95em; }
#caption-output textarea { font-size: 1.25em; font-weight: 600; }
#batch-table img { max-height: 64px; }
/* gallery labels ("#rank · id · score · caption") in full, under the picture, not cut on it */
.i2t-gallery .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
.i2t-gallery .thumbnail-item > img { aspect-ratio: 1; height: auto; }
.i2t-gallery .caption-label { position: static; max-width: none; white-space: normal; overflow: visible;
                              text-overflow: clip; border: none; border-radius: 0; }
.gradio-container { width: 100% !important; max-width: 1240px !important; margin: auto !important; }
footer { display: none !important; }
.i2t-settings [data-testid="block-info"] { white-space: nowrap; }  /* "Top-p", not "Top-" over "p" */
"""
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


UPLOADS = (gr.Image, gr.File)  # the inputs that carry a user's file


def upload_paths(payload: Any) -> Any:
    """An upload's raw payload (what the browser or gradio_client sent, already moved into
    Gradio's cache) -> its path; a list of paths for a multi-file ``gr.File``; ``None`` if empty."""
    if isinstance(payload, (list, tuple)):
        return [p for p in (upload_paths(item) for item in payload) if p]
    if isinstance(payload, dict):
        return str(payload["path"]) if payload.get("path") else None
    return str(getattr(payload, "path", None) or "") or None


def undecoded(fn: Any, inputs: list[Any]) -> Any:
    """``fn`` for an event wired with ``preprocess=False`` (see :func:`on`): each upload reaches
    it as its path, every other input through its own component's checks (bounds, choices)."""
    @functools.wraps(fn)  # keeps fn's signature: Gradio injects gr.Progress by it
    def run(*values: Any, **kwargs: Any) -> Any:
        args = [upload_paths(v) if isinstance(c, UPLOADS) else v if c.stateful else c.preprocess(v)
                for c, v in zip(inputs, values, strict=False)]
        return fn(*args, *values[len(inputs):], **kwargs)
    return run


def on(trigger: Any, fn: Any, inputs: list[Any], **kwargs: Any) -> Any:
    """``trigger(fn, inputs=inputs, **kwargs)`` with Gradio's own preprocessing off.

    Every event that takes an image or file input is wired through here, so no interaction can
    hand an upload to Gradio's decoding: the app's ``core.load_image`` checks it (header, pixel
    and decode caps) and says why. Patching the components' ``preprocess`` was not enough: an
    update returned to a component (``gr.skip()``, ``gr.update``) makes Gradio rebuild it for
    the session from its constructor arguments, and the rebuilt ``gr.Image`` decodes again.
    Also avoids ``gr.File``'s preprocessing, which leaves an empty temp file per upload.
    """
    return trigger(undecoded(fn, inputs), inputs=inputs, preprocess=False, **kwargs)


def _generation_panel(precision_default: str = "float32") -> list[Any]:
    """The collapsed generation settings (controls that do not apply are greyed out)."""
    with gr.Accordion("Generation settings", open=False, elem_classes=["i2t-settings"]):
        decoding = gr.Radio(list(handlers.DECODING), value="Beam search", label="Decoding",
                            info="Beam search follows the model card; sampling gives varied captions")
        with gr.Row():
            beams = gr.Slider(1, 8, value=4, step=1, label="Beams")
            max_tokens = gr.Slider(1, 64, value=15, step=1, label="Max new tokens")
        with gr.Row():  # two a row: three squeezed "Top-p" onto two lines
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature", interactive=False)
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p", interactive=False)
        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)", interactive=False)
        precision = gr.Radio(list(PRECISIONS), value=precision_default, label="Precision", info=PRECISION_HELP)
    decoding.change(lambda d: [gr.update(interactive=d == "Beam search")] + [gr.update(interactive=d == "Sampling")] * 3,
                    inputs=[decoding], outputs=[beams, temperature, top_p, seed], queue=False, **PRIVATE)
    return [decoding, beams, max_tokens, temperature, top_p, seed, precision]


def _caption_tab(services: Services) -> Any:
    """The Caption tab; returns its precision radio (the model bar follows the session's choice)."""
    config = services.config
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            image = gr.Image(type="filepath", sources=["upload", "clipboard", "webcam"], label="Image",
                             height=320, elem_id="caption-image")
            settings = _generation_panel(services.config.precision)
            button = gr.Button("Caption", variant="primary", elem_id="caption-button")
            examples = [[str(p)] for p in example_files(config.examples, config.example_limit)]
            ex = gr.Examples(examples=examples, inputs=[image], label="Examples", examples_per_page=12) if examples else None
        with gr.Column(scale=1):
            caption = gr.Textbox(label="Caption", lines=2, interactive=False, buttons=["copy"], elem_id="caption-output")
            status = gr.HTML(elem_id="caption-status")
            gallery = note = None
            if config.indexes:
                note = gr.HTML(elem_id="caption-neighbours-note")
                gallery = gr.Gallery(label="Nearest gallery images", columns=4, height="auto", fit_columns=False,
                                     elem_id="caption-neighbours", object_fit="cover", elem_classes=["i2t-gallery"])
    # a bad upload is taken out of the image slot (no broken-image icon); the message box says why
    page = dict(outputs=[caption, status, image], concurrency_id="caption", concurrency_limit=config.batch_size,
                show_progress_on=[caption], **PRIVATE)
    # as in the Streamlit app: an upload captions at once; Caption captions again (new settings)
    events = [on(image.upload, handlers.caption(services, api=False), [image, *settings], **page),
              on(button.click, handlers.caption(services, api=False), [image, *settings], **page)]
    if ex is not None:  # clicking an example captions it, as in the Streamlit app
        events.append(on(ex.load_input_event.then, handlers.caption(services, api=False), [image, *settings], **page))
    if gallery is not None:
        for event in events:
            on(event.then, handlers.neighbours(services), [image, caption], outputs=[gallery, note], **PRIVATE)
    api = gr.Button(visible=False)  # the scripting endpoint: same work, errors raised as gr.Error
    on(api.click, handlers.caption(services, api=True), [image, *settings], outputs=[caption], api_name="caption",
       concurrency_id="caption", concurrency_limit=config.batch_size,
              api_description="Caption one image; raises an error with the reason for an unusable image or model.")
    return settings[-1]


def _batch_tab(services: Services) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            files = gr.File(file_count="multiple", file_types=["image"], label="Images", elem_id="batch-files",
                            height=200)
            settings = _generation_panel(services.config.precision)
            button = gr.Button("Caption all", variant="primary", elem_id="batch-button")
            status = gr.HTML(elem_id="batch-status")
            with gr.Row():
                csv = gr.DownloadButton("Download CSV", elem_id="batch-csv", size="md")
                jsonl = gr.DownloadButton("Download JSONL", elem_id="batch-jsonl", size="md")
                sidecars = gr.DownloadButton("Download caption files (.zip)", elem_id="batch-sidecars",
                                             size="md")
        with gr.Column(scale=2):
            table = gr.Dataframe(headers=["", "file", "caption", "error"], datatype=["markdown", "str", "str", "str"],
                                 interactive=False, wrap=True, label="Captions", elem_id="batch-table",
                                 column_count=4, column_widths=["10%", "20%", "40%", "30%"])

    def run(files, decoding, beams, max_tokens, temperature, top_p, seed, precision,  # type: ignore[no-untyped-def]
            progress=gr.Progress()):  # noqa: B008 - Gradio injects the tracker by default value
        return handlers.batch(services)(files, decoding, beams, max_tokens, temperature, top_p, seed, precision,
                                        progress=progress)

    on(button.click, run, [files, *settings], outputs=[table, csv, jsonl, status, sidecars],
       api_name="caption_batch", show_progress_on=[table])


def _similar_tab(services: Services) -> None:
    if not services.config.indexes:
        gr.HTML('<div class="i2t-note">No index loaded. Build one with <code>img2text ssl embed</code> and start '
                'the app with <code>--index DIR</code> (or set <code>IMG2TEXT_INDEX</code>).</div>')
        return
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            index_choice = gr.Dropdown(services.indexes.choices, value=services.indexes.choices[0], label="Index",
                                       elem_id="similar-index")
            query = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Query image", height=220,
                             elem_id="similar-image")
            find = gr.Textbox(label="…or pick a gallery image as the query: type an id, file name or caption words",
                              elem_id="similar-find")
            pick = gr.Dropdown(handlers.pick_choices(services, None)["choices"], value=None, label="Gallery image",
                               elem_id="similar-pick")
            k = gr.Slider(1, 20, value=5, step=1, label="Results (k)", elem_id="similar-k")
            button = gr.Button("Find similar", variant="primary", elem_id="similar-button")
            words = gr.Textbox(label="Find images by words", submit_btn="Find by words", elem_id="similar-words",
                               **handlers.words_box(services, None))
        with gr.Column(scale=2):
            status = gr.HTML(elem_id="similar-status")
            gallery = gr.Gallery(label="Result images", columns=4, height="auto", elem_id="similar-results",
                                 object_fit="cover", elem_classes=["i2t-gallery"])
            table = gr.Dataframe(headers=["rank", "image id", "score", "captions"], interactive=False, wrap=True,
                                 label="Results", elem_id="similar-table", column_count=4,
                                 column_widths=["70px", "110px", "90px", "60%"])
            with gr.Accordion("Raw results (JSON)", open=False):
                raw = gr.JSON(label="results")
    picked = gr.State(None)  # the gallery id whose image is in the query slot; an upload clears it
    show: dict[str, Any] = dict(inputs=[raw], outputs=[gallery, table, status], queue=False, **PRIVATE)
    on(button.click, handlers.similar(services), [query, k, index_choice, picked], outputs=[raw], api_name="similar",
       api_description="Find the k indexed images most similar to an image; returns {'results': [{rank, "
                                 "image_id, image_path, score, captions, categories}], 'error': None or why, 'note', "
                                 "'same_image': the gallery id of the query itself or None, 'warning': None or "
                                 "why the scores mean little, 'search': how the index ranks}.",
                 ).then(handlers.render_results, **show)
    words.submit(handlers.similar(services, words=True), inputs=[words, k, index_choice], outputs=[raw],
                 api_name="find_text", api_description="Find the k indexed images that best match the words: by "
                 "meaning for a CLIP/SigLIP index, by caption words (BM25), or both fused (text_mode "
                 "says which); returns the same JSON as /similar.").then(handlers.render_results, **show)
    # an upload (or clearing the slot) ends a picked query: the Gallery image choice goes too
    on(query.input, handlers.query_changed(services), [query], outputs=[query, picked, pick, status], **PRIVATE)
    pick.input(lambda c, i: handlers.pick(services, c, i), inputs=[index_choice, pick], outputs=[query, picked],
               **PRIVATE)
    index_choice.change(lambda c, i: handlers.index_changed(services, c, i), inputs=[index_choice, picked],
                        outputs=[words, picked, query], **PRIVATE)
    for trigger in (find.submit, find.change, index_choice.change):
        trigger(lambda c, t: handlers.pick_choices(services, c, t), inputs=[index_choice, find], outputs=[pick],
                **PRIVATE)


def _run_tab(services: Services) -> tuple[Any, gr.Dropdown, list[Any]] | None:
    """Returns what ``demo.load`` must call to fill the tab on page load (None: no runs)."""
    if not services.config.runs:
        gr.HTML('<div class="i2t-note">No training run configured. Train with <code>img2text ssl train</code> '
                'and start the app with <code>--run DIR</code> (or set <code>IMG2TEXT_RUN</code>).</div>')
        return None
    choices = [str(p) for p in services.config.runs]
    run_choice = gr.Dropdown(choices, value=choices[0], label="Run folder", elem_id="run-choice")
    summary = gr.HTML(elem_id="run-summary")
    loss = gr.Image(label="Loss and health metrics", type="pil", interactive=False, elem_id="run-loss", height=320)
    history = gr.Dataframe(headers=list(HISTORY_COLUMNS), interactive=False, label="Per-epoch metrics (history.json)",
                           elem_id="run-history", column_count=len(HISTORY_COLUMNS))
    samples_note = gr.HTML(elem_id="run-samples-note")  # the index's collapse warning, if any
    samples = gr.Gallery(label="Sample retrievals (query, then its nearest images)", columns=5, height="auto",
                         object_fit="cover", elem_id="run-samples", elem_classes=["i2t-gallery"])
    show = handlers.run_view(services)
    outputs = [loss, history, summary, samples_note, samples]
    run_choice.change(show, inputs=[run_choice], outputs=outputs, **PRIVATE)
    return show, run_choice, outputs


def build_app(config: AppConfig, services: Services | None = None) -> gr.Blocks:
    """The whole UI; call ``launch(**launch_kwargs(config, services))`` on the result."""
    services = services or Services(config)
    cache = config.cache_seconds
    with gr.Blocks(title="image-to-text", fill_width=True, delete_cache=(min(cache, 600), cache)) as demo:
        gr.Markdown("# image-to-text\nCaption images, find similar ones, and inspect training runs.")
        with gr.Row():
            model_bar = gr.HTML(elem_id="model-status")
            retry = gr.Button("Retry loading the model", visible=False, size="sm", elem_id="model-retry")
        timer = gr.Timer(2.0)
        bar: dict[str, Any] = dict(outputs=[model_bar, retry, timer], queue=False, **PRIVATE)
        with gr.Tabs():
            with gr.Tab("Caption", id="caption"):
                precision = _caption_tab(services)
            with gr.Tab("Batch", id="batch"):
                _batch_tab(services)
            with gr.Tab("Similar images", id="similar"):
                _similar_tab(services)
            with gr.Tab("Training run", id="run"):
                initial = _run_tab(services)
        demo.load(lambda p: handlers.model_status(services, p), inputs=[precision], **bar)
        timer.tick(lambda p: handlers.model_status(services, p), inputs=[precision], **bar)
        precision.change(lambda p: handlers.model_status(services, p), inputs=[precision], **bar)
        retry.click(lambda p: handlers.retry_model(services, p), inputs=[precision], **bar)
        if initial is not None:
            show, run_choice, outputs = initial
            demo.load(show, inputs=[run_choice], outputs=outputs, **PRIVATE)
        if config.mcp:
            from gradio_app.mcp_tools import add_tools  # it uses on() from this module

            add_tools(demo, services)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=2)
    return demo


def launch_kwargs(config: AppConfig, services: Services) -> dict[str, Any]:
    """Server settings: bind address, upload limit, and the only folders that may be served."""
    return {"server_name": config.host, "server_port": config.port, "max_file_size": config.max_upload_bytes,
            "allowed_paths": services.allowed_paths(), "css": CSS, "theme": gr.themes.Soft(primary_hue="indigo"),
            "footer_links": ["api"], "show_error": True, "quiet": True, "mcp_server": config.mcp}
