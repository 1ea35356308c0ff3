"""Benchmarks: every figure is printed beside the floor it is measured against, in the same run."""
