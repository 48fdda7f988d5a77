"""Benchmarks: each measures its baseline in the same run, on the same broker and events."""
