"""Reproducible throughput, latency and memory runs; ``make bench`` runs them all (see README.md)."""
