"""Noise cancellation (pure): which differing fields are real and which are noise.

The method is Diffy's.  Each sampled request goes to the primary, to the shadow,
and (with ``noise.secondary``) a second time to the primary's backend.  Per field
path, *raw* counts the comparisons where primary and shadow differ there, and
*noise* counts those where primary and secondary differ there: a field that
differs between two calls of the same legacy (a timestamp, a random id) is noise.
A field is reported only when

* raw > noise,
* the relative difference ``|raw - noise| / (raw + noise)`` exceeds ``relative``, and
* the absolute difference ``|raw - noise| / total`` exceeds ``absolute``
  (``total``: comparisons of the endpoint).

Without a secondary there is no noise estimate: every raw difference is reported.

    >>> sorted(significant({"/ts": 100, "/price": 3}, {"/ts": 98}, 100, 0.2, 0.0003))
    ['/price']
"""

from __future__ import annotations

from collections.abc import Mapping


def is_significant(raw: int, noise: int, total: int, relative: float, absolute: float) -> bool:
    if raw <= noise or total <= 0:
        return False
    delta = raw - noise
    return delta / (raw + noise) > relative and delta / total > absolute


def significant(
    raw: Mapping[str, int],
    noise: Mapping[str, int] | None,
    total: int,
    relative: float,
    absolute: float,
) -> set[str]:
    """The field paths of ``raw`` that are real differences (all of them when ``noise`` is
    None, i.e. noise cancellation is off)."""
    if noise is None:
        return {path for path, count in raw.items() if count > 0}
    return {
        path
        for path, count in raw.items()
        if is_significant(count, noise.get(path, 0), total, relative, absolute)
    }
