"""Benchmarks of LNDS SPE against peers: `python -m benchmarks --scale ci|full`."""
