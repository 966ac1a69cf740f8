"""``img2text caption``: caption files, folders or stdin; stream results; resume safely.

``--output F`` writes ``F.meta.json`` (model, revision, family, dtype, format, every generation
option with the family's defaults and prompt filled in)
before the first caption. ``--resume`` continues ``F`` only when those settings match (exit 2
naming each difference otherwise); an existing ``F`` is never replaced without ``--overwrite``.

``--dtype int8`` prints its loading stages to stderr (one line each, seconds since the load began;
silent under ``--quiet``) and does not wait for the compiled encoder: it captions with the eager
int8 encoder at once and the captioner swaps the compiled one in when the background build is
done. Waiting would not finish a large input sooner on a small CPU (the build and the captions
share the same cores either way, and eager int8 is already faster than float32), while a
short input would pay the whole build for a few images; eager and compiled int8 use the same
int8 weights and arithmetic (only Inductor's fusion differs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from core import DEFAULT_MAX_PIXELS, ConfigError
from core.captioning import FORMATS, GenerationOptions, Triggers
from core.cli import caption_datasets
from core.cli.config_options import add_config_options, config_from_args
from core.cli.options import (
    CAPTION_BATCH_SIZE,
    add_batch_size,
    add_generation_args,
    add_model_args,
    add_quiet,
    generation_kwargs,
    quiet_transformers,
)
from core.datasets import LIST_SUFFIXES
from core.distributed import RayOptions
from core.errors import changed_settings

# Files read as batch sources rather than as one image: tar shards, parquet, lists of paths.
BATCH_SUFFIXES = (".tar", ".parquet", *LIST_SUFFIXES)
PROGRESS_MIN = 4  # show a progress bar from this many images on
MODEL_KEYS = ("model", "revision", "dtype")  # the model settings a resumed file must share
NO_TRIGGERS = Triggers()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption",
        help="caption image files, folders or stdin",
        description="Caption images. Folders are searched recursively for image files; '-' reads "
        "one image from stdin. Bad files are reported on stderr and skipped; exit status 1 "
        "means some failed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, - for stdin, a text file of paths, tar shards (shards/{00000..00009}.tar or a glob) or parquet files/folders")
    add_model_args(p)
    add_generation_args(p)
    out = p.add_argument_group("input and output")
    add_batch_size(out, CAPTION_BATCH_SIZE)
    out.add_argument("--format", choices=(*FORMATS, *caption_datasets.DATASET_FORMATS, "parquet"),
                     default="text",
                     help="text: PATH<TAB>CAPTION; jsonl; csv (failed inputs are rows with their error); "
                     "coco: [{image_id, caption}] (COCO file names); imagefolder: -o DIR/metadata.jsonl "
                     "for Hugging Face datasets; webdataset: -o DIR/shard-NNNNN.tar; parquet: part "
                     "files in the -o folder (with --ray). See docs/apps.md, 'Output formats'")
    out.add_argument("--output", "-o", type=Path, default=None, help="write here instead of stdout")
    again = out.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="skip inputs already in --output and append the rest, retrying failed "
                       "ones (the model, generation settings and --prefix/--suffix must match the "
                       "file's .meta.json)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace an existing --output file (with --sidecar: existing caption files)")
    caption_datasets.register(out, again)
    add_config_options(out, Triggers)
    out.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    out.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    add_quiet(out)
    add_config_options(p.add_argument_group(
        "Ray cluster", "--ray ADDRESS captions one SOURCE (folder, list of paths, tar shards such as "
        "'shards/{00000..00099}.tar', parquet file or folder) into -o OUT_DIR with --format parquet; "
        "see docs/distributed.md"), RayOptions)
    p.set_defaults(func=run)


def meta_path(output: Path) -> Path:
    return output.with_name(output.name + ".meta.json")


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _differences(saved: dict[str, Any], wanted: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """``"num_beams: 4 before, 1 now"`` per setting of ``keys`` that differs (see ``changed_settings``)."""
    return changed_settings({k: saved.get(k) for k in keys}, {k: wanted.get(k) for k in keys})


def _refuse(output: Path, diffs: list[str]) -> None:
    raise ConfigError(
        f"{output}: cannot --resume, its settings differ from this run's ("
        + "; ".join(diffs) + f"). Repeat the settings in {meta_path(output).name}, or write "
        "elsewhere, or start over with --overwrite"
    )


def _saved_meta(output: Path) -> dict[str, Any]:
    """The ``.meta.json`` of a file to resume (generation normalised to every option)."""
    path = meta_path(output)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        meta["generation"] = GenerationOptions.from_kwargs(**meta.get("generation", {})).to_dict()
    except FileNotFoundError:
        raise ConfigError(f"{output}: cannot --resume, {path.name} (the settings it was written "
                          "with) is missing; start over with --overwrite or write elsewhere") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: cannot --resume, unreadable settings ({exc}); start over "
                          "with --overwrite or write elsewhere") from None
    return meta


def check_output(args: argparse.Namespace, generation: dict[str, Any],
                 triggers: Triggers = NO_TRIGGERS, *, exists: bool | None = None) -> dict[str, Any] | None:
    """Refuse to mix settings or replace results; returns the saved meta when resuming.

    ``exists``: whether the output already holds results (default: a non-empty ``--output`` file;
    folder outputs say it themselves).

    Raises:
        ConfigError: ``--resume`` without ``--output``, or with different format, generation
            settings or trigger words; an existing output without ``--resume``/``--overwrite``.
    """
    if args.resume and args.output is None:
        raise ConfigError("--resume needs --output FILE (the file to continue)")
    if args.output is None or not (_has_content(args.output) if exists is None else exists):
        return None
    if not args.resume:
        if args.overwrite:
            return None
        raise ConfigError(f"{args.output} already exists: add --resume to continue it, "
                          "--overwrite to replace it, or choose another --output")
    saved = _saved_meta(args.output)
    wanted = {"format": args.format, "generation": resolved_generation(args, generation)}
    diffs = _differences(saved, wanted, ("format", "generation"))
    words = triggers.to_meta()  # files written before trigger words existed have none
    diffs += changed_settings({k: saved.get(k, "") for k in words}, words)
    if diffs:
        _refuse(args.output, diffs)
    return saved


def resolved_generation(args: argparse.Namespace, generation: dict[str, Any]) -> dict[str, Any]:
    """Every generation option a caption of ``--model`` is made with (its family's defaults and
    prompt filled in), read from the model's config.json without loading it."""
    from core.captioning import model_family

    family = model_family(args.model, trust_remote_code=getattr(args, "trust_remote_code", False))
    return family.options(generation).to_dict()


def _inputs(
    args: argparse.Namespace, saved: dict[str, Any] | None
) -> tuple[list, list, set[str], list[tuple[str, str]]]:
    """(inputs still to caption as (key, image) pairs, records already done, their keys,
    (key, reason) of source items that could not even be read)."""
    from core import iter_image_files
    from core.captioning import coco_image_id, read_done

    stdin_data = sys.stdin.buffer.read() if "-" in args.paths else None
    files, sourced = _split_sources(args)
    paths = [str(p) for p in iter_image_files(files, recursive=not args.no_recursive)]
    existing = read_done(args.output, args.format) if saved is not None else []
    done = {r.path for r in existing if r.ok}  # failed rows are retried

    def is_done(path: str) -> bool:
        if args.format != "coco":
            return path in done
        try:
            return str(coco_image_id(path)) in done
        except ValueError:
            return False  # reported as an error when written

    todo: list[tuple[str, Any]] = [(p, p) for p in paths if not is_done(p)]
    unreadable: list[tuple[str, str]] = []
    for item in sourced:
        if is_done(item.key):
            continue
        if item.error is not None:
            unreadable.append((item.key, item.error))
        else:
            todo.append((item.key, item.image))
    if stdin_data is not None:
        todo.append(("-", stdin_data))
    return todo, existing, done, unreadable


def _check_paths_exist(paths: list[str]) -> None:
    """A PATH that does not exist is a usage error naming it (exit 2), before any model loads.

    Raises:
        ConfigError: a path that is not ``-``, not a pattern and not on disk.
    """
    missing = [p for p in paths if p != "-" and not Path(p).exists() and not any(ch in p for ch in "*?[{")]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}; check the PATH "
                          "arguments (nothing was captioned)")


def _split_sources(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    """Image files and plain folders (walked as before) vs. batch sources read item by item.

    Tar shards (a ``.tar``, a glob or brace pattern), parquet files or folders and text files of
    paths are read through ``core.datasets``, the same reader the ``--ray`` path uses.
    """
    from core.datasets import iter_source_items, open_source

    ray_options = config_from_args(RayOptions, args)
    files: list[str] = []
    items: list[Any] = []
    for arg in (a for a in args.paths if a != "-"):
        path = Path(arg)
        pattern = not path.exists() and any(ch in arg for ch in "*?[{")
        batch_file = path.is_file() and path.suffix.lower() in BATCH_SUFFIXES
        if not (path.is_dir() or batch_file or pattern):
            files.append(arg)  # an image file (or not one: load_image says why, as before)
            continue
        source = open_source(arg, columns=ray_options.run_kwargs()["columns"],
                             recursive=not args.no_recursive)
        if source.kind == "folder":
            files.append(arg)  # a plain folder: keys stay the file paths, as before
        else:
            items.extend(iter_source_items(source))
    return files, items


def _open(args: argparse.Namespace, meta: dict[str, Any], resuming: bool) -> IO[str]:
    from core.fileio import atomic_write_json

    if args.output is None:
        return sys.stdout
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(meta_path(args.output), meta)
    append = resuming and args.format != "coco"
    return open(args.output, "a" if append else "w", encoding="utf-8", newline="")


ERROR_ROW_FORMATS = ("jsonl", "csv")  # result files with a place for a failed input's error


def _write_failure(writer: Any, record: Any) -> None:
    """A failed input as a row with its error, where the format has one (as the apps' downloads)."""
    if writer.fmt in ERROR_ROW_FORMATS:
        writer.write(record)


def _retry_failed(args: argparse.Namespace, existing: list) -> list:
    """``--resume``: drop the failed rows of the file (rewritten atomically) so they are retried."""
    from core.captioning import to_string
    from core.fileio import atomic_write_text

    kept = [r for r in existing if r.ok]
    if len(kept) != len(existing) and args.format in ERROR_ROW_FORMATS:
        atomic_write_text(args.output, to_string(kept, args.format) if kept else "")
    return kept


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    gen = generation_kwargs(args)
    triggers = config_from_args(Triggers, args)
    ray_options = config_from_args(RayOptions, args)
    if ray_options.ray is not None or args.format == "parquet":
        return run_on_ray(args, ray_options, gen, triggers)
    if caption_datasets.wanted(args):
        return caption_datasets.run(args, gen, triggers)
    if args.append or args.prepend or args.link:
        raise ConfigError("--append/--prepend go with --sidecar, --link with --format imagefolder")
    _check_paths_exist(args.paths)
    saved = check_output(args, gen, triggers)
    todo, existing, done, unreadable = _inputs(args, saved)
    existing = _retry_failed(args, existing)
    for key, why in unreadable:
        print(f"img2text: skipped {key}: {why}", file=sys.stderr)
    if not todo:
        if unreadable:
            return 1
        if not args.quiet:
            print(f"img2text: nothing to do ({len(done)} already captioned)", file=sys.stderr)
        return 0
    captioner = _load_captioner(args)
    from core.captioning import CaptionRecord, ResultWriter  # torch: after the model check

    meta = {**captioner.info, "generation": captioner.options(**gen).to_dict(), "format": args.format,
            **triggers.to_meta()}
    if saved is not None and (diffs := _differences(saved, meta, MODEL_KEYS)):
        _refuse(args.output, diffs)
    stream = _open(args, meta, resuming=saved is not None)
    writer = ResultWriter(stream, args.format, target=args.output, existing=existing,
                          header=not existing)
    failed = len(unreadable)
    for key, why in unreadable:
        _write_failure(writer, CaptionRecord(key, "", why))
    records = captioned(args, captioner, todo, gen, triggers)
    try:
        for record in records:
            reason = record.error
            if record.ok:
                try:
                    writer.write(record)
                    continue
                except ValueError as exc:  # e.g. not a COCO file name in --format coco
                    reason = str(exc)
            failed += 1
            _write_failure(writer, CaptionRecord(record.path, "", reason))
            tqdm.write(f"img2text: skipped {record.path}: {reason}", file=sys.stderr)
        writer.close()
    finally:
        records.close()  # its progress bar
        if stream is not sys.stdout:
            stream.close()
    if not args.quiet:
        print(f"img2text: captioned {len(todo) + len(unreadable) - failed} image(s), {failed} failed"
              + (f", {len(done)} already done" if done else ""), file=sys.stderr)
    return 1 if failed else 0


def captioned(args: argparse.Namespace, captioner: Any, todo: list[tuple[str, Any]], gen: dict[str, Any],
              triggers: Triggers) -> Generator[Any, None, None]:
    """The records of ``todo`` as they are made (trigger words applied), with a progress bar on
    stderr for more than a few images; ``close()`` the generator to end the bar early."""
    from core.captioning import iter_caption_records

    bar = tqdm(total=len(todo), unit="img", disable=args.quiet or len(todo) < PROGRESS_MIN,
               file=sys.stderr, desc="captioning")
    try:
        for record in iter_caption_records(
            captioner, todo, batch_size=args.batch_size, max_pixels=args.max_pixels,
            progress=lambda n, _total: bar.update(n - bar.n), **gen,
        ):
            yield triggers.apply(record)
    finally:
        bar.close()


def _stage_printer(args: argparse.Namespace) -> Any:
    """int8's loading stages to stderr, one line each with the seconds since the load began;
    None (quiet) under ``--quiet`` or another dtype."""
    import time

    if args.quiet or args.dtype != "int8":
        return None
    start = time.monotonic()

    def show(stage: str) -> None:
        print(f"int8 model: {stage} ({time.monotonic() - start:.1f} s)", file=sys.stderr, flush=True)

    return show


def _load_captioner(args: argparse.Namespace) -> Any:
    """The captioner; a model that cannot load is refused at once when offline and not cached
    (before torch is imported), its fix-it commands written as this run's command line."""
    import shlex

    from core import ModelUnavailableError
    from core.captioning import for_command, preflight_model

    try:
        preflight_model(args.model)
        from core.captioning import get_captioner  # imports torch: only once the model may load

        quiet_transformers()
        return get_captioner(args.model, device=args.device, dtype=args.dtype,
                             trust_remote_code=args.trust_remote_code, progress=_stage_printer(args))
    except ModelUnavailableError as exc:
        raise ModelUnavailableError(for_command(str(exc), "img2text caption " + shlex.join(args.paths))) from exc


def run_on_ray(args: argparse.Namespace, options: RayOptions, gen: dict[str, Any],
               triggers: Triggers = NO_TRIGGERS) -> int:
    """``--ray``: one SOURCE captioned on a Ray cluster into parquet parts (exit 1: error rows);
    ``--format webdataset``: the parts go to OUT_DIR/parts and become OUT_DIR/shard-NNNNN.tar."""
    from core.distributed import caption_to_parts, error_rows

    webdataset = args.format == "webdataset"
    if (options.ray is None or args.format not in ("parquet", "webdataset") or args.output is None
            or len(args.paths) != 1):
        raise ConfigError("a Ray run takes one SOURCE and writes parquet parts or webdataset shards: "
                          "img2text caption SOURCE --ray ADDRESS -o OUT_DIR --format parquet|webdataset")
    if (triggers.prefix or triggers.suffix) and not webdataset:
        raise ConfigError("--prefix/--suffix on a Ray run go with --format webdataset (parquet parts "
                          "keep the model's captions; add the words when you read them)")
    quiet_transformers()
    parts = args.output / "parts" if webdataset else args.output
    summary = caption_to_parts(args.paths[0], parts, model=args.model, dtype=args.dtype,
                               trust_remote_code=args.trust_remote_code,
                               device=args.device, batch_size=args.batch_size,
                               max_pixels=args.max_pixels, resume=args.resume,
                               overwrite=args.overwrite, progress=not args.quiet,
                               verbose=args.verbose, **options.run_kwargs(), **gen)
    if summary.errors:  # listed as in local mode, not only in the parts
        for key, why in error_rows(parts):
            print(f"img2text: skipped {key}: {why}", file=sys.stderr)
    if webdataset:
        from core.distributed import parts_to_shards

        written = parts_to_shards(parts, args.output, triggers.to_meta())
        if not args.quiet:
            print(f"img2text: {written} webdataset shard(s) written -> {args.output}", file=sys.stderr)
    return 1 if summary.errors else 0
