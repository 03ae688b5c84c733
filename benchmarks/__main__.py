"""``python -m benchmarks NAME [args...]``: run benchmarks/bench_NAME.py (``--list`` lists them)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = _names()
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print("usage: python -m benchmarks NAME [args...]   (NAME --help for its options)")
        print("benchmarks:", ", ".join(names) or "(none)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(
            f"benchmarks: unknown benchmark {name!r} (available: {', '.join(names)})",
            file=sys.stderr,
        )
        return 2
    mod = importlib.import_module(f"benchmarks.bench_{name}")
    return int(mod.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
