"""``build_app(config)``: the Gradio Blocks UI (Caption, Batch, Similar images, Training run)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from gradio_app import handlers
from gradio_app.config import AppConfig
from gradio_app.services import Services

CSS = """
.i2t-error { border: 1px solid #e11d48; background: #fff1f2; color: #9f1239; padding: 10px 12px;
             border-radius: 8px; white-space: normal; font-size: 0.95em; }
.i2t-note { color: #475569; padding: 6px 2px; font-size: 0.95em; }
#caption-output textarea { font-size: 1.25em; font-weight: 600; }
.gradio-container { width: 100% !important; max-width: 1240px !important; margin: auto !important; }
footer { display: none !important; }
"""


def _path_only(payload: Any) -> str | None:
    """Preprocess an upload to its file path, without decoding it."""
    if payload is None or getattr(payload, "path", None) is None:
        return None
    return str(payload.path)


def uploaded_image(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` that hands the handler the uploaded file's path without decoding it.

    Gradio's own preprocessing opens every upload with Pillow, which would turn a text file
    named ``.jpg`` or a decompression bomb into a generic failure of the whole (batched) call;
    ``core.load_image`` checks format and pixel count itself and explains what is wrong.
    Uploads still pass Gradio's size limit and must lie in its upload folder (checked before
    preprocessing). An instance attribute, not a subclass: Gradio writes a ``.pyi`` file next to
    the module of every Component subclass.
    """
    image = gr.Image(type="filepath", **kwargs)
    image.preprocess = _path_only  # type: ignore[method-assign]
    return image


def _generation_panel() -> list[gr.components.Component]:
    """The collapsed generation settings; returns the inputs in handler order."""
    with gr.Accordion("Generation settings", open=False):
        decoding = gr.Radio(list(handlers.DECODING), value="Beam search", label="Decoding",
                            info="Beam search follows the model card; sampling gives varied captions")
        with gr.Row():
            beams = gr.Slider(1, 8, value=handlers.DEFAULT_BEAMS, step=1, label="Beams")
            max_tokens = gr.Slider(1, 64, value=handlers.DEFAULT_MAX_TOKENS, step=1,
                                   label="Max new tokens")
        with gr.Row():
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature (sampling)")
            top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (sampling)")
            seed = gr.Number(value=-1, precision=0, label="Seed (sampling; -1 = random)")
    return [decoding, beams, max_tokens, temperature, top_p, seed]


def _caption_tab(services: Services) -> None:
    config = services.config
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            image = uploaded_image(sources=["upload", "clipboard", "webcam"],
                                  label="Image", height=320, elem_id="caption-image")
            settings = _generation_panel()
            button = gr.Button("Caption", variant="primary", elem_id="caption-button")
            examples = services.example_files()
            if examples:
                gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Examples",
                            examples_per_page=12)
        with gr.Column(scale=1):
            caption = gr.Textbox(label="Caption", lines=2, interactive=False, buttons=["copy"],
                                 elem_id="caption-output")
            status = gr.HTML(elem_id="caption-status")
            gallery = None
            if config.indexes:
                gallery = gr.Gallery(label="Nearest gallery images", columns=4, height="auto", fit_columns=False,
                                     elem_id="caption-neighbours", object_fit="cover")
    event = button.click(
        handlers.caption_batch(services), inputs=[image, *settings], outputs=[caption],
        api_name="caption", batch=True, max_batch_size=config.max_batch_size,
        api_description="Caption one image; returns the caption, or 'Error: <why>' "
                        "for an unusable image or model.",
    )
    after = event.then(handlers.caption_status, inputs=[caption], outputs=[status, caption],
                       api_visibility="private", queue=False)
    if gallery is not None:
        after.then(handlers.neighbours(services), inputs=[image, caption], outputs=[gallery],
                   api_visibility="private")


def _batch_tab(services: Services) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            files = gr.File(file_count="multiple", file_types=["image"], label="Images",
                            elem_id="batch-files", height=200)
            settings = _generation_panel()
            button = gr.Button("Caption all", variant="primary", elem_id="batch-button")
            status = gr.HTML(label="status")
            with gr.Row():
                csv = gr.DownloadButton("Download CSV", elem_id="batch-csv", size="md")
                jsonl = gr.DownloadButton("Download JSONL", elem_id="batch-jsonl", size="md")
        with gr.Column(scale=2):
            thumbs = gr.Gallery(label="Thumbnails", columns=8, height=160, object_fit="cover",
                                fit_columns=False)
            table = gr.Dataframe(headers=["file", "caption", "error"], datatype="str",
                                 interactive=False, wrap=True, label="Captions",
                                 elem_id="batch-table", column_count=3)

    def run(files, decoding, beams, max_tokens, temperature, top_p, seed,
            progress=gr.Progress()):  # noqa: B008 - Gradio injects the tracker by default value
        return handlers.batch(services)(files, decoding, beams, max_tokens, temperature, top_p,
                                        seed, progress=progress)

    button.click(run, inputs=[files, *settings], outputs=[thumbs, table, csv, jsonl, status],
                 api_name="caption_batch")


def _similar_tab(services: Services) -> None:
    config = services.config
    if not config.indexes:
        gr.HTML('<div class="i2t-note">No index loaded. Build one with '
                '<code>img2text ssl embed</code> and start the app with <code>--index DIR</code> '
                '(or set <code>IMG2TEXT_INDEX</code>).</div>')
        return
    first_items, first_ids = handlers.browse_items(services, services.default_index)
    ids = gr.State(first_ids)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            index_choice = gr.Dropdown(services.index_choices, value=services.default_index,
                                       label="Index", elem_id="similar-index")
            query = uploaded_image(sources=["upload", "clipboard"],
                                  label="Query image", height=240, elem_id="similar-image")
            k = gr.Slider(1, 20, value=5, step=1, label="Results (k)")
            button = gr.Button("Find similar", variant="primary", elem_id="similar-button")
            browse = gr.Gallery(first_items, label="…or click a gallery image", columns=6,
                                height=240, allow_preview=False, object_fit="cover",
                                elem_id="similar-browse")
        with gr.Column(scale=2):
            status = gr.HTML(elem_id="similar-status")
            gallery = gr.Gallery(label="Most similar", columns=5, height=300,
                                 elem_id="similar-results", object_fit="cover")
            table = gr.Dataframe(headers=["rank", "image id", "score", "captions"],
                                 interactive=False, wrap=True, label="Results",
                                 elem_id="similar-table", column_count=4)
            with gr.Accordion("Raw results (JSON)", open=False):
                raw = gr.JSON(label="results")
    search = handlers.similar(services)
    button.click(search, inputs=[query, k, index_choice], outputs=[raw], api_name="similar",
                 api_description="Find the k indexed images most similar to an image; returns "
                                 "{'results': [{rank, image_id, image_path, score, captions, categories}], "
                                 "'error': None or why}.",
                 ).then(handlers.render_results, inputs=[raw], outputs=[gallery, table, status],
                        api_visibility="private", queue=False)

    def pick(choice: str | None, k_value: float, id_list: list[str], evt: gr.SelectData):
        image_id = id_list[evt.index] if evt.index is not None and evt.index < len(id_list) else None
        return search(None, k_value, choice, image_id)

    browse.select(pick, inputs=[index_choice, k, ids], outputs=[raw],
                  api_visibility="private").then(
        handlers.render_results, inputs=[raw], outputs=[gallery, table, status],
        api_visibility="private", queue=False)

    def change_index(choice: str | None):
        items, new_ids = handlers.browse_items(services, choice)
        return items, new_ids

    index_choice.change(change_index, inputs=[index_choice], outputs=[browse, ids],
                        api_visibility="private")


def _run_tab(services: Services) -> tuple[Any, gr.Dropdown, list[Any]] | None:
    """Returns what ``demo.load`` must call to fill the tab on page load (None: no runs)."""
    config = services.config
    if not config.runs:
        gr.HTML('<div class="i2t-note">No training run configured. Train with '
                '<code>img2text ssl train</code> and start the app with <code>--run DIR</code> '
                '(or set <code>IMG2TEXT_RUN</code>).</div>')
        return None
    choices = [str(p) for p in config.runs]
    run_choice = gr.Dropdown(choices, value=choices[0], label="Run folder", elem_id="run-choice")
    summary = gr.HTML(elem_id="run-summary")
    with gr.Row(equal_height=False):
        loss = gr.Image(label="Loss and health metrics", type="pil", interactive=False,
                        elem_id="run-loss", height=320)
    history = gr.Dataframe(headers=list(handlers.HISTORY_COLUMNS), interactive=False,
                           label="Per-epoch metrics (history.json)", elem_id="run-history",
                           column_count=len(handlers.HISTORY_COLUMNS))
    samples = gr.Gallery(label="Sample retrievals (query, then its nearest images)", columns=5,
                         height="auto", object_fit="cover", elem_id="run-samples")
    show = handlers.run_view(services)
    run_choice.change(show, inputs=[run_choice], outputs=[loss, history, summary, samples],
                      api_visibility="private")
    return show, run_choice, [loss, history, summary, samples]


def build_app(config: AppConfig, services: Services | None = None) -> gr.Blocks:
    """The whole UI; call ``launch(**launch_kwargs(config, services))`` on the result."""
    services = services or Services(config)
    with gr.Blocks(title="image-to-text", fill_width=True) as demo:
        gr.Markdown("# image-to-text\nCaption images, find similar ones, and inspect training runs.")
        with gr.Tabs():
            with gr.Tab("Caption", id="caption"):
                _caption_tab(services)
            with gr.Tab("Batch", id="batch"):
                _batch_tab(services)
            with gr.Tab("Similar images", id="similar"):
                _similar_tab(services)
            with gr.Tab("Training run", id="run"):
                initial = _run_tab(services)
        if initial is not None:
            show, run_choice, outputs = initial
            demo.load(show, inputs=[run_choice], outputs=outputs, api_visibility="private")
    demo.queue(max_size=config.queue_size, default_concurrency_limit=2)
    return demo


def launch_kwargs(config: AppConfig, services: Services) -> dict[str, Any]:
    """Server settings: bind address, upload limit, and the only folders that may be served."""
    return {
        "server_name": config.host,
        "server_port": config.port,
        "max_file_size": config.max_upload_bytes,
        "allowed_paths": services.allowed_paths(),
        "css": CSS,
        "theme": gr.themes.Soft(primary_hue="indigo"),
        "footer_links": ["api"],
        "show_error": True,
        "quiet": True,
    }
