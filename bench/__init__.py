"""Benchmark: batchscore against the bare model (the ceiling) and the naive script."""
