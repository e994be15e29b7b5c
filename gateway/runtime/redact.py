"""Credentials out of a configuration before the admin API shows it (pure).

:func:`redact` copies a JSON-like value and masks, with ``***``:

- the password of every URL (``postgresql://user:***@host/db``), wherever a string holds one;
- ``name=value`` pairs whose name is sensitive (``?password=...`` in a URL, libpq's
  ``password=...``);
- every string or number under a sensitive field name, at any depth (a header match on
  ``x-api-key``, a ``client_secret``).

A name is sensitive when it contains ``password``, ``passwd`` or ``secret``, or has a word
``token``, ``key``, ``pwd``, ``apikey``, ``credential(s)`` or ``authorization`` (words split on
``-``, ``_``, ``.`` and camelCase).  A name ending in ``_env`` names an environment variable,
not its value, and is shown (``token_env``).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
SUBSTRINGS = ("password", "passwd", "secret")
WORDS = frozenset(
    {
        "token",
        "tokens",
        "key",
        "keys",
        "apikey",
        "pwd",
        "credential",
        "credentials",
        "authorization",
    }
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^/?#\s]*@")
_PAIR = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?P<eq>\s*=\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;#'\"]+)"
)


def words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return [w for w in re.split(r"[^a-z0-9]+", spaced) if w]


def is_sensitive(name: str) -> bool:
    parts = words(name)
    if not parts or parts[-1] == "env":
        return False
    joined = "".join(parts)
    return any(s in joined for s in SUBSTRINGS) or any(w in WORDS for w in parts)


def _mask_pair(match: re.Match[str]) -> str:
    if not is_sensitive(match["name"]):
        return match[0]
    return f"{match['name']}{match['eq']}{MASK}"


def redact_text(text: str) -> str:
    """The string with URL passwords and sensitive ``name=value`` pairs masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PAIR.sub(_mask_pair, text) if "=" in text else text


def redact(value: Any, sensitive: bool = False) -> Any:
    """A copy of ``value`` (dicts, lists, scalars) with every credential masked."""
    if isinstance(value, dict):
        return {k: redact(v, sensitive or is_sensitive(str(k))) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, sensitive) for v in value]
    if isinstance(value, str):
        return (MASK if value else value) if sensitive else redact_text(value)
    if sensitive and isinstance(value, (int, float)) and not isinstance(value, bool):
        return MASK
    return value
