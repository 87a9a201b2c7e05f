"""Benchmarks: `make bench` (or `python -m bench`) prints figures; docs/benchmarks.md records them."""
