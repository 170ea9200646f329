"""Benchmarks for pypicloud_lite: run one with `python -m bench.<name>` (see bench/README.md)."""
