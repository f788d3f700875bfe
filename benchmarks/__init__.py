"""Reproducible runs: throughput, latency, chaos; results written beside them."""
