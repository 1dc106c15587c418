"""Paths the tests share, computed once from this file's place (tests/paths.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"
DAGS = ROOT / "dags"
