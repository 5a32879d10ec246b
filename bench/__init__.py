"""Benchmarks (`make bench`): every figure is a ratio of two measurements taken in one run."""
