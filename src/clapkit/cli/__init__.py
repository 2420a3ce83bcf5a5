"""The ``clapkit`` command line. Each sub-command group lives in its own module that exposes
``register(subparsers)``; a command handler returns the process exit code. Modules here import
torch and the models only inside handlers, so that ``--help`` answers at once."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import ClapkitError, one_line

COMMAND_MODULES = ["clapkit.cli.infer", "clapkit.cli.convert", "clapkit.cli.data", "clapkit.train.main",
                   "clapkit.eval.main", "clapkit.index.main", "clapkit.serve.main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clapkit", description="Contrastive language-audio models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a :class:`ClapkitError` is printed as one line (exit 2), anything else is a bug."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ClapkitError as e:
        print(f"clapkit: error: {one_line(e, limit=2000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clapkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``clapkit classify ... | head``): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141

