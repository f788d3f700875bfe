"""Reproducible runs: throughput, latency, memory, quality and chaos; ``make bench`` runs the
cost ones (see benchmarks/README.md)."""
