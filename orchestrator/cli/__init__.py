"""The single ``attnmel`` command: data, train, sweep, report, query and plot subcommands.

Ray is imported only inside the ``sweep`` handlers, so ``attnmel data`` and ``attnmel train``
work on machines without Ray (e.g. a GPU box with PyTorch alone).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from attnmel.errors import UserError
from orchestrator.cli import data, predict, results, sweep, train

__all__ = ["build_parser", "main"]

# Each module exposes register(subparsers); order here is the order of `attnmel --help`.
COMMAND_MODULES = (data, train, predict, sweep, results)


def build_parser() -> argparse.ArgumentParser:
    """Assemble every module's subcommands into one parser."""
    parser = argparse.ArgumentParser(
        prog="attnmel",
        description="Melanoma recognition via visual attention (Yan et al., IPMI 2019): "
        "data, single training runs, Ray Tune sweeps and their result tables.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``attnmel`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"attnmel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnmel: interrupted", file=sys.stderr)
        return 130
