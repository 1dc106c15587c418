"""The input: pulling it from a DVC repo, reading it exactly, its contract with the model, demo data."""
