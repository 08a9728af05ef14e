"""Benchmarks: `python bench/run.py`."""
