"""``clapkit eval``: run benchmark tasks on a model and write the report."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..weights.registry import DEFAULT_MODEL

DEFAULT_CACHE = Path.home() / ".cache" / "clapkit" / "eval"


def cmd_eval(args) -> int:
    from .. import options
    from ..pipeline import load
    from .cache import EmbeddingCache, audio_key
    from .report import write_report
    from .runner import Evaluator
    from .tasks import select_tasks

    tasks = select_tasks(args.tasks)
    templates = [options.template(t, "--template") for t in args.template or []]
    if not args.data_root.is_dir():
        from ..errors import UsageError

        raise UsageError(f"--data-root: {args.data_root} is not a folder")
    pipeline = load(args.model, tokenizer=args.tokenizer, device=args.device, variant=args.variant)
    key = audio_key(pipeline)
    cache = EmbeddingCache(None if args.no_cache else args.cache, key)
    evaluator = Evaluator(pipeline, args.data_root, templates=templates, cache=cache, batch_size=args.batch_size,
                          resamples=args.resamples, seed=args.seed, probe=args.probe)
    start = time.perf_counter()
    outcomes = evaluator.run(tasks)
    seconds = time.perf_counter() - start
    header = {"model": pipeline.name, "model_source": str(args.model), "audio_key": key[:16],
              "templates": templates or "per task", "resamples": args.resamples, "seed": args.seed,
              "audio_embeddings_computed": evaluator.computed, "seconds": round(seconds, 1)}
    written = write_report(outcomes, args.out, header)
    for outcome in outcomes:
        for r in outcome.results:
            value = "–" if r.value is None else f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.ci_low is not None else f"{r.value:.3f}"
            paper = "" if r.paper is None else f"  (paper {r.paper:.3f})"
            print(f"{r.task:<24} {r.metric:<15} {value}{paper}  n={r.n}  {r.status}")
    print(f"{len(written)} files in {args.out}; {evaluator.computed} audio embeddings computed, the rest from the "
          f"cache; {seconds:.1f} s", file=sys.stderr)
    failed = [r for o in outcomes for r in o.results if r.status.startswith("failed")]
    return 1 if failed else 0


def register(subparsers) -> None:
    from ..cli.infer import _checked, _int

    p = subparsers.add_parser("eval", help="zero-shot benchmark: the paper's tasks and the offline ones",
                              description="Run benchmark tasks (see clapkit.eval.tasks) on a model; writes "
                                          "results.json/.md/.csv and PNG plots to --out.")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"registry name or checkpoint path (default: {DEFAULT_MODEL})")
    p.add_argument("--variant", help="architecture of a checkpoint whose keys do not say it")
    p.add_argument("--tasks", default="offline", help="all, paper, offline or comma-separated task names")
    p.add_argument("--data-root", type=Path, required=True,
                   help="folder with one sub-folder per dataset in its official layout, and offline/")
    p.add_argument("--template", action="append",
                   help="prompt with one '{}' (repeatable: the prompts' embeddings are averaged)")
    p.add_argument("--tokenizer", help="tokenizer folder for offline use")
    p.add_argument("--out", type=Path, default=Path("eval-results"))
    p.add_argument("--probe", action="store_true", help="also a linear probe (logistic regression) per single-label task")
    p.add_argument("--batch-size", type=_checked(_int, "--batch-size"), default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"audio embedding cache (default {DEFAULT_CACHE})")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--resamples", type=_checked(_int, "--resamples"), default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_eval)


def main(argv: list[str] | None = None) -> int:
    from ..cli import main as cli_main

    return cli_main(["eval", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
