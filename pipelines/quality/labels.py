"""Short, stable texts for expectations and their bounds.

A label is both the quarantine reason written next to a bad row and the report's row title, so it
must not change between runs or versions of the suite file's formatting.
"""

from __future__ import annotations

from typing import Any


def format_value(value: Any) -> str:
    """A bound or set member as a person writes it: 18, not 18.0; nothing for None."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return "" if value is None else str(value)


def expectation_label(etype: str, kw: dict[str, Any]) -> str:
    """A short, stable description: the quarantine reason and the report's row title."""
    col = kw.get("column")
    args: list[str] = [str(col)] if col is not None else []
    if "min_value" in kw or "max_value" in kw:
        rng = f"{format_value(kw.get('min_value'))}..{format_value(kw.get('max_value'))}"
        strict = [s for s in ("strict_min", "strict_max") if kw.get(s)]
        prefix = "len " if "lengths" in etype else ""
        args.append(prefix + rng + (f" {' '.join(strict)}" if strict else ""))
    if "value_set" in kw:
        values = list(kw["value_set"] or [])
        shown = ", ".join(format_value(v) for v in values[:6])
        args.append("{" + shown + (f", ... +{len(values) - 6}" if len(values) > 6 else "") + "}")
    if "regex" in kw:
        args.append(f"/{kw['regex']}/")
    if "value" in kw:
        args.append(("len == " if "lengths" in etype else "== ") + format_value(kw["value"]))
    if "type_" in kw:
        args.append(str(kw["type_"]))
    if "type_list" in kw:
        args.append("|".join(map(str, kw["type_list"] or [])))
    if "column_set" in kw or "column_list" in kw:
        cols = kw.get("column_set") or kw.get("column_list") or []
        args.append(f"{len(cols)} columns" + (", exact" if kw.get("exact_match") else ""))
    return f"{etype}({', '.join(args)})"


def range_text(kw: dict[str, Any]) -> str:
    """The expected range in words (">= 18 and <= 120"), for an aggregate's failure message."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if kw.get('strict_min') else '>='} {format_value(lo)}")
    if hi is not None:
        parts.append(f"{'<' if kw.get('strict_max') else '<='} {format_value(hi)}")
    return " and ".join(parts) or "anything"
