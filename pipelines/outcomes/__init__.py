"""Outcomes: labels that arrive later joined to published scores, and performance estimated before."""
