"""The ``ravine`` command.

* ``ravine demo [--out DIR] [--steps N] [--kappa K] [--no-report]``: the table, then the report;
* ``ravine lab report [--out DIR] [--steps N] [--kappa K] [--trials T] [--seeds S]
  [--no-animation]``;
* ``ravine lab explore [--out DIR]``: the interactive page, ``DIR/explore.html``;
* ``ravine train {kingma-fig1,kingma-fig2,bias-correction,sutskever,zeiler} [--quick]
  [--out DIR]``: a paper's comparison on the digits; prints the tables and writes
  NAME.json, NAME.md and NAME.png.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .lab.train import EXPERIMENTS


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
    demo.add_argument(
        "--no-report",
        action="store_true",
        help="skip the HTML pages (the report, OUT/report, and the explore page, OUT/explore)",
    )
    lab = commands.add_parser("lab", help="the lab's longer work").add_subparsers(
        dest="lab_command", required=True, metavar="LAB_COMMAND"
    )
    report = lab.add_parser(
        "report",
        help="one self-contained HTML page: the seed's story with figures and numbers",
    )
    report.add_argument("--out", default="out/report", help="output folder (default: %(default)s)")
    report.add_argument(
        "--steps", type=int, default=300, help="steps per run (default: %(default)s)"
    )
    report.add_argument(
        "--kappa", type=float, default=50.0, help="valley's κ (default: %(default)s)"
    )
    report.add_argument(
        "--trials", type=int, default=40, help="search trials per optimizer (default: %(default)s)"
    )
    report.add_argument(
        "--seeds", type=int, default=10, help="seeds per batch size (default: %(default)s)"
    )
    report.add_argument("--no-animation", action="store_true", help="skip the GIF")
    explore = lab.add_parser(
        "explore",
        help="one offline HTML page where all nine optimizers run live in the browser",
        description="Write OUT/explore.html: the surfaces, sliders and trajectories of all "
        "nine optimizers, computed in the page by the library's own traced rules.",
    )
    explore.add_argument(
        "--out", default="out/explore", help="output folder (default: %(default)s)"
    )
    train = commands.add_parser(
        "train",
        help="real training on scikit-learn's digits: reproduce a paper's comparison",
        description="Tune each optimizer on the validation split, run several seeds, print "
        "the tables and write NAME.json, NAME.md and NAME.png.",
    )
    train.add_argument(
        "experiment",
        choices=EXPERIMENTS,
        help="kingma-fig1: Adam vs SGD-Nesterov vs Adagrad, dense and sparse logistic "
        "regression; kingma-fig2: the same plus RMSProp and AdaDelta on an MLP with "
        "dropout; bias-correction: Adam with and without it across β × γ × lr; "
        "sutskever: NAG vs Momentum across β on a deep autoencoder; zeiler: lr "
        "sensitivity against AdaDelta's ε × ρ",
    )
    train.add_argument("--quick", action="store_true", help="the short version (seconds)")
    train.add_argument("--out", default="out/train", help="output folder (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ravine`` console script and of ``python -m ravine``."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        if args.steps < 1 or args.kappa < 1:
            _parser().error("--steps must be >= 1 and --kappa >= 1")
        from .lab import demo  # matplotlib is imported only when needed

        demo.main(out_dir=args.out, steps=args.steps, kappa=args.kappa, report=not args.no_report)
        if not args.no_report:
            from .lab import explore

            print("\nthe interactive page (all nine optimizers, live in your browser, offline):")
            print(f"open {explore.build(Path(args.out) / 'explore').resolve()}")
    elif args.command == "lab" and args.lab_command == "report":
        if args.steps < 10 or args.kappa < 1 or args.trials < 1 or args.seeds < 2:
            _parser().error("--steps >= 10, --kappa >= 1, --trials >= 1 and --seeds >= 2")
        from .lab import report

        report.build(
            args.out,
            kappa=args.kappa,
            steps=args.steps,
            trials=args.trials,
            seeds=args.seeds,
            animation=not args.no_animation,
        )
    elif args.command == "lab" and args.lab_command == "explore":
        from .lab import explore

        print(f"open {explore.build(args.out).resolve()}")
    elif args.command == "train":
        _train(args.experiment, quick=args.quick, out_dir=args.out)
    return 0


def _train(experiment: str, *, quick: bool, out_dir: str) -> None:
    import time

    from .lab.train import report, runs  # torch, scikit-learn: imported when needed

    start = time.perf_counter()
    text, paths = report.write(runs.RUNS[experiment](quick=quick), out_dir)
    print(text)
    print(f"\n{time.perf_counter() - start:.0f} s; wrote " + ", ".join(map(str, paths)))
