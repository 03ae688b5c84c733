"""Benchmarks: ``python -m benchmarks NAME [options]`` runs ``benchmarks/bench_NAME.py``.

Each ``bench_*.py`` times growthmachine side by side with its named peers in one process run (via
:mod:`benchmarks.harness`) and rewrites its own section of ``benchmarks/RESULTS.md``.
Benchmarks are not part of the test command.
"""
