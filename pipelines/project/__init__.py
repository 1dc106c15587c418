"""Scaffolding a user's own project: a starter input suite and a params.yaml from a model + data."""
