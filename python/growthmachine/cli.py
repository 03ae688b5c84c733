"""Command line: ``growthmachine run``, ``growthmachine --version``.

Bad arguments exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def _nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {v}")
    return v


def _days(text: str) -> int:
    v = _positive_int(text)
    if v < 30:
        raise argparse.ArgumentTypeError(f"must be at least 30, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog="growthmachine",
        description="growthmachine: an intelligent, data-driven user-growth machine.",
    )
    p.add_argument("--version", action="version", version=f"growthmachine {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    r = sub.add_parser(
        "run",
        help="run the whole machine on the built-in synthetic population and write a report",
        description=(
            "Runs every module (insight, allocation, real-time, ...) on the built-in synthetic "
            "population and writes OUT/report.html, OUT/summary.json and OUT/tables/*.parquet."
        ),
    )
    r.add_argument(
        "--users",
        type=_positive_int,
        default=100_000,
        metavar="N",
        help="users in the synthetic population (default: 100000)",
    )
    r.add_argument(
        "--days",
        type=_days,
        default=365,
        metavar="D",
        help="days of purchase history to simulate (default: 365)",
    )
    r.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        metavar="S",
        help="random seed; the same seed gives the same report (default: 0)",
    )
    r.add_argument(
        "--out", default="gm-report", metavar="DIR", help="report folder (default: ./gm-report)"
    )
    r.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="T",
        help="threads for the Rust cores (default: env GROWTHMACHINE_NUM_THREADS or all CPUs)",
    )
    g = r.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress bars (default: only in an interactive terminal)",
    )
    g.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress bars"
    )
    r.add_argument("-q", "--quiet", action="store_true", help="print only the report path")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .pipeline import run

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        res = run(
            args.users,
            seed=args.seed,
            days=args.days,
            out=args.out,
            threads=args.threads,
            progress=args.progress,
            log=log,
        )
    except KeyboardInterrupt:
        print("growthmachine: interrupted", file=sys.stderr)
        return 130
    log(f"done in {time.perf_counter() - t0:.1f} s")
    print(res.out / "report.html")
    return 0
