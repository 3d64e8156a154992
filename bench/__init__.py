"""Benchmarks of koppelpunt: `make bench` runs bench/run.py (see bench/README.md)."""
