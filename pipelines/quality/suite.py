"""Loading a GX ExpectationSuite JSON file into a checked `Suite`; the built-in output suite.

A suite that cannot be run exactly by the streaming gate is refused here, at load time, with one
ConfigError naming the file, so a run never starts with a gate that would skip something.
`BUILTIN_OUTPUT_SUITE` ships in the package and fits any model: it is checked on the scores with
the ID column seen as `id` (`pipelines.run.scoring.suite_view`), whatever the input calls it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError
from pipelines.quality.spec import ExpectationSpec, classify, expectation_items

BUILTIN_OUTPUT_SUITE = Path(__file__).with_name("output_suite.json")  # output_suite: null


class Suite:
    """A parsed, checked suite: the GX ExpectationSuite plus our classification of each entry.

    Pickles as its JSON (the GX objects are rebuilt lazily), so it is cheap to ship to workers.
    Loading never imports GX unless `gx_check`: our own kwargs checks run always, GX's models
    run in `check_with_gx` once GX is needed anyway (engine gx, or the fast engine's audit).
    """

    def __init__(self, raw: dict[str, Any], source: str, *, gx_check: bool = False) -> None:
        self.source = source
        self.raw = raw
        self.name: str = raw["name"]
        self.specs: tuple[ExpectationSpec, ...] = classify(raw, source, gx_check=gx_check)
        self.gx_checked = gx_check
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
        self.digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        uniques = [s for s in self.specs if s.type == "expect_column_values_to_be_unique"]
        if len({s.column for s in uniques}) > 1:
            raise ConfigError(
                f"suite {self.name!r} checks uniqueness of several columns "
                f"{sorted({str(s.column) for s in uniques})}; the streaming gate supports one "
                "(the ID column)",
                where=source,
            )
        self.unique_column: str | None = uniques[0].column if uniques else None
        self._gx_suites: dict[tuple[str, ...], Any] | None = None

    def __len__(self) -> int:
        return len(self.specs)

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, {len(self)} expectations, from {self.source})"

    def __getstate__(self) -> dict[str, Any]:
        return {"raw": self.raw, "source": self.source, "gx_checked": self.gx_checked}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["raw"], state["source"])  # type: ignore[misc]
        self.gx_checked = state.get("gx_checked", False)

    def check_with_gx(self) -> None:
        """Run GX's own models over every expectation (once): a ConfigError if GX refuses one."""
        if not self.gx_checked:
            classify(self.raw, self.source, gx_check=True)
            self.gx_checked = True

    @property
    def gx_specs(self) -> tuple[ExpectationSpec, ...]:
        """The expectations GX runs on every batch (schema and row-level)."""
        return tuple(s for s in self.specs if s.kind != "aggregate")

    def gx_suite(self, ids: tuple[str, ...] | None = None) -> Any:
        """The GX ExpectationSuite of `gx_specs` (or of the given ids), built once per process."""
        key = ids if ids is not None else tuple(s.id for s in self.gx_specs)
        if self._gx_suites is None:
            self._gx_suites = {}
        if key not in self._gx_suites:
            from great_expectations.core import ExpectationSuite

            items = {e["id"]: e for e in expectation_items(self.raw)}
            entries = [items[i] for i in key]
            suite = ExpectationSuite(name=self.name, expectations=entries)
            if len(suite.expectations) != len(entries):  # GX logs and drops invalid entries
                raise ConfigError(
                    f"GX accepted {len(suite.expectations)} of {len(entries)} expectations",
                    where=self.source,
                )
            self._gx_suites[key] = suite
        return self._gx_suites[key]


def load_suite(path: str | Path, *, gx_check: bool = False) -> Suite:
    """Read and check a GX ExpectationSuite JSON file; every problem is one ConfigError.

    Refused: unreadable JSON, unknown expectation types, invalid kwargs (checked by our own
    `kwcheck`, and by GX's models with `gx_check`), types the streaming gate cannot evaluate
    exactly or route, `row_condition`, `mostly` below 1 on a routed expectation, and suite
    parameters (`$PARAMETER`).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"expectation suite {path} not found",
            fix="check validation.input_suite / validation.output_suite in params.yaml "
            "(output_suite: null is the built-in one)",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"expectation suite is not valid JSON: {exc}", where=str(path)) from None
    return parse_suite(raw, str(path), gx_check=gx_check)


def parse_suite(raw: Any, source: str = "<suite>", *, gx_check: bool = False) -> Suite:
    """Like `load_suite`, for a suite already parsed from JSON (`source` names it in errors)."""
    if not isinstance(raw, dict):
        raise ConfigError("an expectation suite must be a JSON object", where=source)
    raw = dict(raw)
    if not raw.get("name"):
        raw["name"] = Path(source).stem or "suite"
    if not isinstance(raw.get("expectations"), list):
        raise ConfigError(
            'an expectation suite needs an "expectations" list (GX ExpectationSuite JSON)',
            where=source,
        )
    if not raw["expectations"]:
        raise ConfigError(
            "the suite has no expectations: a gate that checks nothing cannot fail",
            where=source,
        )
    return Suite(raw, source, gx_check=gx_check)
