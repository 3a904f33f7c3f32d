"""Medians, paired ratios and Markdown tables."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any


def median(xs: Iterable[float]) -> float | None:
    values = list(xs)
    return statistics.median(values) if values else None


def paired_ratio(
    rows: list[dict[str, Any]],
    metric: str,
    num: Callable[[dict[str, Any]], bool],
    den: Callable[[dict[str, Any]], bool],
) -> float | None:
    """Median over rounds of (numerator / denominator) measured in the same round: drift of a
    shared machine hits both sides of each ratio alike."""
    ratios = []
    for rep in sorted({r["rep"] for r in rows}):
        a = [r[metric] for r in rows if r["rep"] == rep and num(r)]
        b = [r[metric] for r in rows if r["rep"] == rep and den(r)]
        if a and b and b[0]:
            ratios.append(a[0] / b[0])
    return median(ratios)


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])
