"""The ``clapkit`` command line. Each sub-command group lives in its own module that exposes
``register(subparsers)``; a command handler returns the process exit code."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ["clapkit.cli.infer", "clapkit.cli.data"]


# Errors about the user's inputs, files or set-up (named here to avoid importing torch at start-up).
USER_ERRORS = {"WeightsError", "TokenizerError", "AudioError", "ManifestError", "DatasetError", "ShardError"}


class UserError(Exception):
    """An error in what the user asked for: printed as one line, no traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clapkit", description="Contrastive language-audio models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Exception as e:
        if not isinstance(e, UserError) and type(e).__name__ not in USER_ERRORS:
            raise
        print(f"clapkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clapkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
