"""The input: pulled from a DVC repo, read exactly, its contract with the model, demo data."""
