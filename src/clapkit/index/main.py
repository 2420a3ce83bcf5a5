"""``clapkit index`` and ``clapkit search`` (and ``torchrun --nproc-per-node N -m clapkit.index``).

Options are checked when parsed; torch, FAISS and the model are imported inside the handlers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

from .. import options
from ..cli.infer import (
    _checked,
    _int,
    _model_options,
    load_model,
    printable,
    report_failures,
)
from ..errors import ClapkitError, UsageError, one_line
from ..weights.registry import DEFAULT_MODEL

DEFAULT_TEMPLATE = "this is the sound of {}"  # the tags' prompt (the indexer imports it from here)


def _score(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}: must be a cosine score between -1 and 1, got {text!r}") from None
    if not math.isfinite(value) or not -1 <= value <= 1:
        raise UsageError(f"{name}: must be a cosine score between -1 and 1, got {text!r}")
    return value


def _part(name: str, text: str):
    from .indexer import Part

    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match.group(2)) >= 1 or not int(match.group(1)) < int(match.group(2)):
        raise UsageError(f"{name}: must be RANK/N with 0 <= RANK < N (e.g. 0/4), got {text!r}")
    return Part(int(match.group(1)), int(match.group(2)))


def _recorded_model(db_path: str):
    """The model a database was built with (None for a new or empty database)."""
    from .db import Database

    if not os.path.isfile(db_path):
        return None
    db = Database(db_path)
    try:
        return db.model
    finally:
        db.close()


def _resolve_model(args) -> None:
    """--model/--tokenizer default to the database's own (a re-run needs no --model), else the default."""
    recorded = _recorded_model(args.db)
    if args.model is None:
        args.model = recorded.source if recorded else DEFAULT_MODEL
    if args.tokenizer is None and recorded is not None and recorded.tokenizer and args.model == recorded.source:
        args.tokenizer = recorded.tokenizer


# ---- index ------------------------------------------------------------------------------------


def cmd_index(args, part=None) -> int:
    from .indexer import Indexer, read_labels

    if args.merge:
        return _merge(args)
    if not args.folders:
        raise UsageError("index: give the folders (or files) to index, or --merge")
    part = part or args.part
    if args.tags:
        read_labels(args.tags)  # a bad vocabulary is named before the model loads
    _resolve_model(args)  # a part checks the model against its own database; the merge checks the main one
    model = load_model(args)
    indexer = Indexer(model, args.db, source=args.model, tokenizer=args.tokenizer, segments=args.segments,
                      reindex=args.reindex, batch_files=args.batch_files, batch_size=args.batch_size, tags=args.tags,
                      template=args.template, tag_top=args.tag_top, retry_errors=args.retry_errors,
                      index_kind=args.index_kind, part=part)
    report = indexer.run(args.folders)
    where = f" (part {part.rank} of {part.world}: {indexer.db_path})" if part else ""
    print(f"clapkit: {report.summary()}{where}", file=sys.stderr)
    if args.json:
        print(json.dumps({"added": report.added, "changed": report.changed, "unchanged": report.unchanged,
                          "reused": report.reused, "removed": report.removed, "tagged": report.tagged,
                          "failed": len(report.failed), "files": report.files, "vectors": report.vectors,
                          "index": report.kind}))
    return report_failures(report.failed)


def _merge(args) -> int:
    from .merge import merge_parts

    report = merge_parts(args.db, reindex=args.reindex, index_kind=args.index_kind)
    print(f"clapkit: {report.summary()}", file=sys.stderr)
    return 0


# ---- search -----------------------------------------------------------------------------------


def cmd_search(args) -> int:
    from .search import Searcher

    if not args.query and not args.like and not args.tag:
        raise UsageError("search: give a text query, --like FILE or --tag LABEL")
    if args.query and args.like:
        raise UsageError("search: give a text query or --like FILE, not both")
    if args.query is not None and not args.query.strip():
        raise UsageError("search: the query is empty")
    if args.like and not os.path.exists(args.like):
        raise UsageError(f"--like: {args.like}: no such file")
    explicit_model = args.model is not None
    _resolve_model(args)
    if not os.path.isfile(args.db):
        raise UsageError(f"--db: {args.db} does not exist; build it first with: clapkit index FOLDER --db {args.db}")
    searcher = Searcher(args.db)  # opened first: a missing or foreign database answers before the model loads
    indexed = searcher.file_id(args.like) if args.like else None
    if args.query or (args.like and indexed is None) or explicit_model:
        searcher.attach(load_model(args))
    filters = {"tag": args.tag, "min_score": args.min_score}
    if args.query:
        hits = searcher.text(args.query, args.top, **filters)
    elif indexed is not None:
        hits = searcher.like(indexed, args.top, **filters)
    elif args.like:
        hits = searcher.audio(args.like, args.top, **filters)
    else:  # --tag alone: the files with that tag, by the tag's cosine
        hits = searcher.tagged(args.tag, args.top, min_score=args.min_score)
    for hit in hits:
        if args.json:
            print(json.dumps(hit.to_dict(segments=searcher.segments)), flush=True)
        else:
            span = f"\t{hit.start:.2f}-{hit.end:.2f}s" if searcher.segments and hit.start is not None else ""
            tags = ("\t" + ", ".join(f"{label} ({score:.2f})" for label, score in hit.tags[:3])) if hit.tags else ""
            print(f"{hit.score:.4f}\t{_shown(hit.path)}{span}{tags}", flush=True)
    if not hits:
        print("clapkit: no hits" + (f" tagged {args.tag!r}" if args.tag else "")
              + (f" scoring at least {args.min_score:g}" if args.min_score is not None else ""), file=sys.stderr)
    searcher.close()
    return 0


# ---- parser -----------------------------------------------------------------------------------


def _shown(path: str) -> str:
    """A path for the terminal: control characters (a name can hold ESC sequences) as escapes."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in printable(path))


def _model_default_help(parser, default: str) -> None:
    """--model and --tokenizer of search commands default to what the database records."""
    parser._option_string_actions["--model"].help += f" (default: {default})"
    parser._option_string_actions["--tokenizer"].help += " (default: the one the database was indexed with)"


def register(subparsers) -> None:
    p = subparsers.add_parser("index", help="index audio folders for sound search (SQLite + FAISS)",
                              description="Embed every audio file under the folders into a search database; re-runs "
                                          "embed only new or changed files and remove deleted ones.")
    p.add_argument("folders", nargs="*", help="folders (searched recursively) or files")
    p.add_argument("--db", required=True, help="the index database (SQLite; the FAISS cache is DB.faiss)")
    p.add_argument("--segments", action="store_true", help="one vector per window of long files: hits name the time range")
    p.add_argument("--tags", metavar="LABELS_FILE", help="zero-shot tags per file from this vocabulary (one label a line)")
    p.add_argument("--template", type=_checked(lambda name, text: options.template(text, name), "--template"), default=DEFAULT_TEMPLATE,
                   help=f"prompt for the tag labels (default: {DEFAULT_TEMPLATE!r})")
    p.add_argument("--tag-top", type=_checked(_int, "--tag-top"), default=5, help="tags kept per file (default: 5)")
    p.add_argument("--reindex", action="store_true", help="re-embed everything with this model, in place (resumable)")
    p.add_argument("--retry-errors", action="store_true", help="try unchanged files that failed before again")
    p.add_argument("--index-kind", choices=["auto", "flat", "ivf", "hnsw"],
                   help="FAISS index: auto is exact up to 50k vectors, IVF beyond; the choice is kept by "
                        "later runs (default: the database's, else auto)")
    p.add_argument("--batch-files", type=_checked(_int, "--batch-files"), default=32,
                   help="files written per transaction (default: 32)")
    p.add_argument("--part", type=_checked(_part, "--part"), metavar="RANK/N",
                   help="index only this share of the files into DB.part-RANK-of-N (scale-out; then --merge)")
    p.add_argument("--merge", action="store_true", help="combine DB.part-*-of-N into DB")
    _model_options(p)
    _model_default_help(p, f"the database's model; for a new database {DEFAULT_MODEL}")
    p.set_defaults(handler=cmd_index, model=None)

    p = subparsers.add_parser("search", help="search an index by text or by example audio")
    p.add_argument("query", nargs="?", help="words describing the sound")
    p.add_argument("--db", required=True, help="the index database")
    p.add_argument("--top", type=_checked(_int, "--top"), default=10, help="hits shown (default: 10)")
    p.add_argument("--like", metavar="FILE", help="find sounds like this audio file (indexed or not)")
    p.add_argument("--tag", help="only files tagged with this label (see index --tags); alone, those files by the "
                                 "tag's score")
    p.add_argument("--min-score", type=_checked(_score, "--min-score"), help="leave out hits below this cosine score")
    _model_options(p)
    _model_default_help(p, "the database's model")
    p.set_defaults(handler=cmd_search, model=None)


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc-per-node N -m clapkit.index FOLDER... --db DB``: each process indexes its
    share into ``DB.part-RANK-of-N``; after a barrier rank 0 merges them into ``DB``."""
    from .indexer import Part

    parser = argparse.ArgumentParser(prog="clapkit.index")
    subparsers = parser.add_subparsers(dest="command")
    register(subparsers)
    args = parser.parse_args(["index", *(sys.argv[1:] if argv is None else argv)])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        if world == 1:
            return cmd_index(args)
        import datetime

        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=12))
        try:
            code = 2
            try:
                code = cmd_index(args, part=Part(rank, world))
            finally:
                codes = [None] * world
                dist.all_gather_object(codes, code)  # every rank learns whether all parts are complete
            if rank == 0:
                if any(c not in (0, 1) for c in codes):
                    print(f"clapkit: not merging: rank(s) {[r for r, c in enumerate(codes) if c not in (0, 1)]} "
                          "stopped early; run the same command again to finish", file=sys.stderr)
                    return 2
                args.merge = True
                _merge(args)
            dist.barrier()
            return max(codes)
        finally:
            dist.destroy_process_group()
    except ClapkitError as e:
        print(f"clapkit: error: {one_line(e, limit=2000)}", file=sys.stderr)
        return 2
