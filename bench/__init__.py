"""Benchmarks, each runnable as `python -m bench.<name>`; they print ratios measured side by side."""
