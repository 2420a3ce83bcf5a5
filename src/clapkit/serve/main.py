"""``clapkit serve``: the sound search over HTTP, with a web page (FastAPI + uvicorn)."""
from __future__ import annotations

import ipaddress
import os
import sys

from .. import options
from ..cli.infer import _checked, _int, _model_options, _number, load_model
from ..errors import UsageError
from ..index.main import _model_default_help

TOKEN_VARIABLE = "CLAPKIT_SERVE_TOKEN"
_seconds = _number(float, options.positive_seconds, "a number of seconds above 0")
_megabytes = _number(float, options.positive_seconds, "a number of MiB above 0")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(args):
    from ..index.main import _resolve_model
    from ..index.search import Searcher
    from .app import LOCAL_HOSTS, Limits, create_app

    if not os.path.isfile(args.db):
        raise UsageError(f"--db: {args.db} does not exist; build it first with: clapkit index FOLDER --db {args.db}")
    # A foreign or empty database is named before the model loads. The service keeps its index in memory:
    # writing the FAISS cache back on every refresh during an index run would rewrite it every few seconds.
    searcher = Searcher(args.db, write_cache=False)
    _resolve_model(args)
    searcher.attach(load_model(args))
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_audio_seconds=args.max_audio_seconds,
                    max_labels=args.max_labels, max_query_chars=args.max_query_chars)
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    hosts = args.allowed_host or (LOCAL_HOSTS if _loopback(args.host) else None)
    app = create_app(searcher, token=token, limits=limits, show_paths=args.show_paths, hosts=hosts)
    return app, searcher, token


def cmd_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise UsageError("clapkit serve needs FastAPI and uvicorn: pip install 'clapkit[search]'") from None
    app, searcher, token = build_app(args)
    if not _loopback(args.host) and token is None:
        print(f"clapkit: warning: serving on {args.host} without a token: anyone who can reach it can search and "
              f"download the indexed audio; set --token or {TOKEN_VARIABLE}", file=sys.stderr)
    stats = searcher.stats()
    print(f"clapkit: serving {args.db} ({stats['files']} files, {stats['model']}, {stats['index']} search) at "
          f"http://{args.host}:{args.port}/ (API docs at /docs){' with a token' if token else ''}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve an index over HTTP, with a search page",
                              description="A search service and web page over a database built by clapkit index.")
    p.add_argument("--db", required=True, help="the index database")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_checked(_int, "--port"), default=8000, help="port (default: 8000)")
    p.add_argument("--token", help=f"require Authorization: Bearer TOKEN (also from ${TOKEN_VARIABLE})")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a Host header name to answer (repeatable; default on 127.0.0.1: 127.0.0.1, localhost "
                        "and ::1 only, against DNS rebinding; elsewhere: any)")
    p.add_argument("--show-paths", action="store_true", help="include server paths in results (default: names only)")
    p.add_argument("--max-upload-mb", type=_checked(_megabytes, "--max-upload-mb"), default=20.0,
                   help="largest request body, MiB (default: 20)")
    p.add_argument("--max-audio-seconds", type=_checked(_seconds, "--max-audio-seconds"), default=60.0,
                   help="longest uploaded clip (default: 60)")
    p.add_argument("--max-labels", type=_checked(_int, "--max-labels"), default=100, help="labels per /classify (default: 100)")
    p.add_argument("--max-query-chars", type=_checked(_int, "--max-query-chars"), default=500,
                   help="longest text query (default: 500)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    _model_options(p)
    _model_default_help(p, "the database's model")
    p.set_defaults(handler=cmd_serve, model=None)
