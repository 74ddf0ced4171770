"""The references the benchmarks compare the project with: DBOS used the plain way, seed-shaped."""
