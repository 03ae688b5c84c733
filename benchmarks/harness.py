"""Timing, peak memory and RESULTS.md writing shared by every benchmark.

    from benchmarks.harness import measure, Table, write_section

    t = Table(["case", "implementation", "median s", "peak MB", "speed-up", "notes"])
    m = measure(lambda: our_fn(x), repeat=3)
    p = measure(lambda: peer_fn(x), repeat=1)
    t.add("1M x 16", "growthmachine", m.median, m.peak_mb, p.median / m.median, "...")
    write_section("kmeans", "KMeans", command="python -m benchmarks kmeans", body=t.markdown())

:func:`measure` runs ``fn`` ``warmup`` + ``repeat`` times in this process and reports the median
wall time and the peak resident memory above the level before the call (sampled every 2 ms in a
background thread, so short spikes may be missed by at most that interval).
"""

from __future__ import annotations

import gc
import os
import platform
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("RESULTS.md")


def _rss() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # pragma: no cover
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measurement:
    times: list[float]
    peak_mb: float
    result: Any = field(repr=False, default=None)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)


def measure(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 0) -> Measurement:
    """Median wall time over ``repeat`` runs and peak RSS increase (MB) over all of them."""
    for _ in range(warmup):
        fn()
    gc.collect()
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            r = _rss()
            if r > peak[0]:
                peak[0] = r
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    times, result = [], None
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
    finally:
        stop.set()
        th.join()
    return Measurement(times, (peak[0] - base) / 2**20, result)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        pass
    from growthmachine import __version__, get_num_threads

    return (
        f"{cpu}, {os.cpu_count()} logical CPUs{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, growthmachine {__version__} "
        f"({get_num_threads()} threads)"
    )


class Table:
    def __init__(self, columns: list[str]):
        self.columns = columns
        self.rows: list[list[str]] = []

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} cells, got {len(cells)}")
        self.rows.append([_cell(c) for c in cells])
        print(" | ".join(self.rows[-1]), flush=True)

    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |"
        sep = "| " + " | ".join("---" for _ in self.columns) + " |"
        return "\n".join([head, sep, *("| " + " | ".join(r) + " |" for r in self.rows)])


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def _load() -> str:
    """The machine's load when the section is written: other work on the 2 cores skews timings."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover
        return "load average unknown"
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) at the end of the run"


def write_section(key: str, title: str, *, command: str, body: str) -> None:
    """Replaces (or appends) the section ``key`` of benchmarks/RESULTS.md."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = (
        f"<!-- bench:{key} -->\n## {title}\n\n"
        f"Command: `{command}`  \nMachine: {machine()}  \nRun: {stamp}, {_load()}\n\n"
        f"{body.strip()}\n"
        f"<!-- /bench:{key} -->"
    )
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else (
            "# Benchmark results\n\nEach section is rewritten by its benchmark "
            "(`python -m benchmarks NAME`); peers run in the same process run as growthmachine.\n"
        )
    )
    pat = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->", re.S)
    text = (
        pat.sub(lambda _m: block, text)
        if pat.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    RESULTS.write_text(text)
