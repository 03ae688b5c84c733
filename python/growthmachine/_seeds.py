"""Derived seeds: every random stream of a run comes from the run's one seed through
:func:`derive_seed`, named by where it is used (``derive_seed(seed, "machine", period,
"explore")``), so that streams are independent of each other and of the order they are made in."""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["derive_seed", "derive_rng"]


def derive_seed(seed: int, *path: int | str) -> int:
    """A 63-bit seed for the stream named ``path`` under the run's ``seed`` (NumPy's
    ``SeedSequence`` over the seed and a CRC-32 of each name)."""
    words = [int(seed)] + [
        p if isinstance(p, int) and not isinstance(p, bool) else zlib.crc32(str(p).encode())
        for p in path
    ]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def derive_rng(seed: int, *path: int | str) -> np.random.Generator:
    """``numpy.random.default_rng(derive_seed(seed, *path))``."""
    return np.random.default_rng(derive_seed(seed, *path))
