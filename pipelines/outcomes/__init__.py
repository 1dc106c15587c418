"""Outcomes: late labels joined to published scores; performance estimated before they come."""
