"""Command line: ``growthmachine run``, ``growthmachine plan``, ``growthmachine --version``.

Bad arguments (and bad ``--world`` / ``--plan`` files: unknown keys, wrong types, invalid
values; numbers out of range; an ``--out`` folder that cannot be written; a population too large
for this machine's memory) exit with status 2 and one line on stderr naming the field, before
any stage runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._convert import I64_MAX, U64_MAX


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _threads(text: str) -> int:
    from . import _core

    v = _positive_int(text)
    reason = _core.thread_count_error(v)
    if reason:
        raise argparse.ArgumentTypeError(f"{reason}, got {v}")
    return v


def _int_in(lo: int, hi: int | None, what: str):
    """An argparse type: an int in ``[lo, hi]`` (``hi`` None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be {what}, got {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {v}")
        return v

    return parse


_positive_int = _int_in(1, None, "a positive integer")
_nonnegative_int = _int_in(0, None, "a non-negative integer")
#: Seeds are 64-bit.
_seed = _int_in(0, U64_MAX, "a non-negative integer")
#: User ids are int64 (the memory a population needs is checked before the first stage).
_users = _int_in(1, I64_MAX, "a positive integer")


def _check_out(path: str) -> None:
    """The report folder ``path`` exists or can be created, and a file can be written in it;
    else ``ValueError`` (checked before any stage runs, not after the last)."""
    import tempfile

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {path}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as e:
        raise ValueError(f"--out {path}: cannot write there ({e.strerror or e})") from None


def _nonnegative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text!r}") from None
    if not (v >= 0.0) or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative finite number, got {text}")
    return v


def _load(kind: type, path: str, flag: str):
    """A ``WorldConfig`` or ``Plan`` from a YAML or JSON file; ``ValueError`` naming ``flag``
    and the field on a bad file."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    try:
        if p.suffix.lower() == ".json":
            return kind.from_json(p)
        return kind.from_yaml(p)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{flag} {path}: {e}") from None


def _check_plan(plan, world) -> None:
    """Every task of ``plan`` must be an action of the world's catalogue."""
    from .sim import CHANNELS

    r = world.response
    known = {
        "benefit": {b.name for b in r.benefits},
        "channel": set(CHANNELS),
        "content": set(r.contents),
    }
    tasks = plan.tasks()
    for col, names in known.items():
        bad = sorted(set(tasks[col].astype(str)) - names)
        if bad:
            raise ValueError(
                f"--plan: {col} {bad[0]!r} is not in the world's catalogue "
                f"(known: {', '.join(sorted(names))})"
            )


def _days(text: str) -> int:
    from .sim import MAX_DAYS

    v = _positive_int(text)
    if v < 30:
        raise argparse.ArgumentTypeError(f"must be at least 30, got {v}")
    if v > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DAYS}, got {v}")
    return v


def _periods(text: str) -> int:
    from .pipeline import MAX_PERIODS

    return _int_in(1, MAX_PERIODS, "a positive integer")(text)


def _period_days(text: str) -> int:
    from .pipeline import MAX_PERIOD_DAYS

    return _int_in(1, MAX_PERIOD_DAYS, "a positive integer")(text)


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
        type=_users,
        default=200_000,
        metavar="N",
        help="users in the synthetic population (default: 200000)",
    )
    r.add_argument(
        "--days",
        type=_days,
        default=365,
        metavar="D",
        help="days of purchase history to simulate (default: 365)",
    )
    r.add_argument(
        "--periods",
        type=_periods,
        default=6,
        metavar="P",
        help="periods the machine runs (default: 6)",
    )
    r.add_argument(
        "--period-days",
        type=_period_days,
        default=30,
        metavar="D",
        help="days per period (default: 30)",
    )
    r.add_argument(
        "--budget",
        type=_nonnegative_float,
        default=None,
        metavar="B",
        help="spend per period, expected incentive + channel cost (default: 0.1 per user)",
    )
    r.add_argument(
        "--world",
        default=None,
        metavar="FILE",
        help="world config (growthmachine.sim.WorldConfig) as YAML or JSON (default: built-in)",
    )
    r.add_argument(
        "--plan",
        default=None,
        metavar="FILE",
        help="the machine's plan (growthmachine.planning.Plan) as YAML or JSON "
        "(default: the world's catalogue)",
    )
    r.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="random seed; the same seed gives the same report (default: 0)",
    )
    r.add_argument(
        "--out", default="gm-report", metavar="DIR", help="report folder (default: ./gm-report)"
    )
    r.add_argument(
        "--threads",
        type=_threads,
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
    q = sub.add_parser(
        "plan",
        help="plan tasks and off-site exposures on your own tables (no world)",
        description=(
            "Runs insight, planning, allocation and touchpoint planning on your tables (Parquet "
            "or CSV) and writes OUT/tasks.parquet, OUT/exposures.parquet, OUT/report.html and "
            "OUT/summary.json."
        ),
    )
    q.add_argument("--transactions", required=True, metavar="FILE",
                   help="orders: user_id, day, amount (optional category)")  # fmt: skip
    q.add_argument("--users", required=True, metavar="FILE",
                   help="one row per user: user_id and attributes (consent columns, has_app)")  # fmt: skip
    q.add_argument("--campaign-log", required=True, metavar="FILE",
                   help="a randomised campaign: user_id, action_id (task id or -1), gmv, "
                   "incentive_cost, converted (optional delivered, channel_cost)")  # fmt: skip
    q.add_argument("--plan", required=True, metavar="FILE", help="a planning Plan (YAML/JSON)")
    q.add_argument("--exposure-log", default=None, metavar="FILE",
                   help="a past frequency experiment: segment (lifecycle stage), channel, "
                   "exposures, converted, opted_out")  # fmt: skip
    q.add_argument("--as-of", type=_nonnegative_int, default=None, metavar="DAY",
                   help="first day of the plan (default: the day after the last order)")  # fmt: skip
    q.add_argument("--margin", type=_nonnegative_float, default=0.3, metavar="M",
                   help="contribution margin on GMV (default: 0.3)")  # fmt: skip
    q.add_argument("--touchpoint-budget", type=_nonnegative_float, default=None, metavar="B",
                   help="spend on off-site exposures (default: a tenth of the plan's budget)")  # fmt: skip
    q.add_argument("--seed", type=_seed, default=0, metavar="S")
    q.add_argument("--threads", type=_threads, default=None, metavar="T")
    q.add_argument("--out", default="gm-plan", metavar="DIR", help="output folder")
    q.add_argument("-q", "--quiet", action="store_true", help="print only the report path")
    return p


def _plan_command(args, parser) -> int:
    from . import set_num_threads
    from .machine._tables import plan_from_tables, read_table, write
    from .planning import Plan

    try:
        if args.margin > 1:
            raise ValueError(f"--margin: must be at most 1, got {args.margin}")
        tables = {
            "transactions": read_table(args.transactions, "--transactions"),
            "users": read_table(args.users, "--users"),
            "campaign_log": read_table(args.campaign_log, "--campaign-log"),
        }
        exposure = read_table(args.exposure_log, "--exposure-log") if args.exposure_log else None
        plan = _load(Plan, args.plan, "--plan")
        _check_out(args.out)
    except ValueError as e:
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    if args.threads is not None:
        set_num_threads(args.threads)
    try:
        res = plan_from_tables(
            tables["transactions"], tables["users"], tables["campaign_log"], plan,
            as_of=args.as_of, margin=args.margin, touchpoint_budget=args.touchpoint_budget,
            exposure_log=exposure, seed=args.seed, progress=None if not args.quiet else False,
        )  # fmt: skip
    except (ValueError, TypeError) as e:
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("growthmachine: interrupted", file=sys.stderr)
        return 130
    out = write(res, args.out)
    print(out / "report.html")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "plan":
        return _plan_command(args, parser)
    from .pipeline import run
    from .planning import Plan
    from .sim import WorldConfig
    from .sim._population import check_size

    try:
        world = _load(WorldConfig, args.world, "--world") if args.world else None
        plan = _load(Plan, args.plan, "--plan") if args.plan else None
        if plan is not None:
            _check_plan(plan, world or WorldConfig())
        _check_out(args.out)
        check_size(args.users)
    except MemoryError as e:
        print(f"{parser.prog}: error: --users: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        res = run(
            args.users,
            seed=args.seed,
            days=args.days,
            periods=args.periods,
            period_days=args.period_days,
            budget=args.budget,
            world=world,
            plan=plan,
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
