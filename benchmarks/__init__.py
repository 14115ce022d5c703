"""Throughput and latency benchmarks that print and save figures."""
