"""Small types every layer of the gateway shares, defined once.

``Headers`` is a header list as it travels on the hot path: raw bytes, names
lower-cased, in order, duplicates kept (HTTP allows repeated fields).
"""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

__all__ = ["Headers"]
