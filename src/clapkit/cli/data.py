"""``clapkit data build offline|eval | manifest | shards``: corpora, manifests and shards.

The corpus builder (and everything heavy) is imported only when its command runs."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from clapkit.errors import UsageError

# FSDD is read in place: $CLAPKIT_FSDD, else a checkout's ../shared/data/fsdd beside the working folder.
DEFAULT_FSDD = Path(os.environ.get("CLAPKIT_FSDD", "../shared/data/fsdd"))


def _source_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of package names")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build datasets").add_subparsers(dest="data_command", required=True)
    targets = data.add_parser("build", help="build a corpus").add_subparsers(dest="target", required=True)
    offline = targets.add_parser("offline", help="corpus from Debian packages (apt-get download, no installs)")
    offline.add_argument("--out", type=Path, required=True, help="output folder (manifest.jsonl, report.json)")
    offline.add_argument("--sources", type=_source_list, default=None,
                         help="comma-separated packages (default: all training sources, plus the eval sets)")
    offline.add_argument("--add-sources", type=_source_list, default=[],
                         help="comma-separated optional sources built besides --sources (e.g. festival)")
    offline.add_argument("--sample-rate", type=_positive, default=44100)
    offline.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1)
    offline.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD, help="FSDD folder, read in place")
    offline.set_defaults(handler=_build_offline)
    evaluation = targets.add_parser("eval", help="only the evaluation sets (drum kits, GM families, FSDD)")
    evaluation.add_argument("--out", type=Path, required=True)
    evaluation.add_argument("--sample-rate", type=_positive, default=44100)
    evaluation.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1)
    evaluation.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD)
    evaluation.set_defaults(handler=_build_eval, sources=[])

    manifest = data.add_parser("manifest", help="manifest of a local copy of a dataset in its official layout")
    manifest.add_argument("dataset", help="adapter name, e.g. esc50, clotho, audiocaps ")
    manifest.add_argument("root", type=Path, help="the dataset's folder")
    manifest.add_argument("--out", type=Path, required=True, help="manifest file to write (.jsonl)")
    manifest.add_argument("--absolute-paths", action="store_true", help="absolute clip paths instead of relative")
    manifest.set_defaults(handler=_build_manifest)

    shards = data.add_parser("shards", help="WebDataset tar shards (flac + json) from a manifest, then verified")
    shards.add_argument("manifest", type=Path)
    shards.add_argument("--out", required=True, help="shard pattern, e.g. shards/train-%%06d.tar")
    shards.add_argument("--max-clips", type=_positive, default=1000)
    shards.set_defaults(handler=_write_shards)


def _run(args: argparse.Namespace, eval_sets: bool, report_name: str) -> int:
    from clapkit.data.offline import (
        BuildOptions,
        ProcessingParams,
        build,
        format_report,
    )

    options = BuildOptions(out=args.out, sources=args.sources, params=ProcessingParams(sample_rate=args.sample_rate),
                           jobs=args.jobs, eval_sets=eval_sets, fsdd=args.fsdd, report_name=report_name)
    try:
        report = build(options)
    except KeyError as e:  # an unknown source name
        raise UsageError(f"--sources: {e.args[0]}") from None
    print(format_report(report))
    failed = [(name, source["reason"]) for name, source in report["sources"].items() if source["status"] in ("failed", "skipped")]
    for name, reason in failed:
        print(f"clapkit: failed: {name}: {reason}", file=sys.stderr)
    return 1 if failed else 0


def _build_offline(args: argparse.Namespace) -> int:
    from clapkit.data.offline.sources import default_sources

    eval_sets = args.sources is None
    if args.add_sources:
        args.sources = [*(default_sources() if args.sources is None else args.sources), *args.add_sources]
    return _run(args, eval_sets=eval_sets, report_name="report.json")


def _build_eval(args: argparse.Namespace) -> int:
    return _run(args, eval_sets=True, report_name="eval_report.json")


def _build_manifest(args: argparse.Namespace) -> int:
    from clapkit.data.adapters import collect_manifest, write_with_report

    clips, skipped = collect_manifest(args.dataset, args.root, args.out, absolute_paths=args.absolute_paths)
    write_with_report(args.out, clips, skipped)
    print(f"wrote {len(clips)} clips to {args.out}")
    for item in skipped:
        print(f"clapkit: skipped: {item.path}: {item.reason}", file=sys.stderr)
    return 1 if skipped else 0


def _write_shards(args: argparse.Namespace) -> int:
    from clapkit.data.shards import verify_shards, write_shards

    report = write_shards(args.manifest, args.out, max_clips=args.max_clips)
    check = verify_shards(args.manifest, [str(p) for p in report.shards])
    print(f"wrote {report.written} clips in {len(report.shards)} shards; verified {check.checked} clips")
    problems = report.failures + check.problems
    for line in problems:
        print(f"clapkit: failed: {line}", file=sys.stderr)
    return 1 if problems else 0
