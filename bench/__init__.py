"""Benchmarks: each compares against a baseline measured in the same run and writes a
table into docs/benchmarks.md between its own markers."""
