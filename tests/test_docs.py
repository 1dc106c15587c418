"""The docs name real tests: every `tests/...::name` node id in docs/reliability.md is collected.

A moved or renamed test (or a typo in the doc) fails here rather than leaving the reliability map
pointing at nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.paths import ROOT

DOC = ROOT / "docs" / "reliability.md"
NODE_ID = re.compile(r"`(tests/[^`\s:]+\.py::[^`]+)`")


def documented_ids(text: str) -> set[str]:
    return set(NODE_ID.findall(text))


def collected_ids(files: list[str]) -> set[str]:
    """The node ids `pytest --collect-only -q` prints for these files (a fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"collection failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_every_node_id_in_the_reliability_doc_is_a_collected_test() -> None:
    ids = documented_ids(DOC.read_text())
    assert len(ids) > 100, "the node id pattern no longer matches the tables of the doc"
    files = sorted({i.partition("::")[0] for i in ids})
    absent = [f for f in files if not (ROOT / f).is_file()]
    assert not absent, f"docs/reliability.md names test files that do not exist: {absent}"
    missing = sorted(ids - collected_ids(files))
    assert not missing, "docs/reliability.md names tests pytest does not collect:\n" + "\n".join(
        missing
    )
