"""Entry point of ``cwl-pipeline``: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cwl_pipeline.cli import decode, dev, export


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="cwl-pipeline",
        description="Move AWS CloudWatch Logs into Google BigQuery.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev.add_parser(sub)
    decode.add_parser(sub)
    export.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
