"""The ``ravine`` command: ``ravine demo [--out DIR] [--steps N] [--kappa K]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ravine", description="The seed's optimizers on pathological curvature."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="all nine optimizers on the valley: a table, valley.png, losses.png, results.json",
        description="Tune each optimizer's lr, run it on the valley, print a table and "
        "write valley.png, losses.png and results.json.",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--steps", type=int, default=300, help="steps per run (default: %(default)s)")
    demo.add_argument(
        "--kappa", type=float, default=50.0, help="valley's condition number (default: %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ravine`` console script and of ``python -m ravine``."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        if args.steps < 1 or args.kappa < 1:
            _parser().error("--steps must be >= 1 and --kappa >= 1")
        from .lab import demo  # matplotlib is imported only when needed

        demo.main(out_dir=args.out, steps=args.steps, kappa=args.kappa)
    return 0
