"""Benchmarks: run with `make bench`; results are recorded in benchmarks/RESULTS.md."""
