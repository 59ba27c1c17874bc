"""Benchmarks: each module runs the services as real processes on loopback."""
