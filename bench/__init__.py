"""Helpline benchmarks: ``python -m bench [--quick] [--size N] [--only NAME]`` (``make bench``).

Each benchmark measures a figure beside its target and, where there is one, the floor set by the
stack itself in the same run; the runner prints a table and writes ``bench/results/latest.json``.
"""
