"""routes.yaml: reading, checking and the frozen values the gateway runs on.

``load_file``/``parse`` turn a document into a :class:`Config` or raise a
:class:`ConfigError` whose problems name file:line:column, field path and what was
expected; ``read_text`` reads a file's text with the same limits, for callers that
keep the text (the supervisor's reload).

Modules: ``yamlsource`` (bounded YAML reading with source positions), ``schema``
(the spec mini-language), ``spec`` (the document's shape and its only defaults),
``checks`` (cross-references), ``model`` (the dataclasses and shared rules) and
``loader`` (read, parse and build).
"""

from gateway.config.loader import ConfigError, load_file, parse, read_text
from gateway.config.model import (
    Backend,
    Capture,
    Config,
    Match,
    Noise,
    Outlier,
    ProxySettings,
    Retries,
    Route,
    Shadow,
    ValueMatch,
)

__all__ = [
    "Backend",
    "Capture",
    "Config",
    "ConfigError",
    "Match",
    "Noise",
    "Outlier",
    "ProxySettings",
    "Retries",
    "Route",
    "Shadow",
    "ValueMatch",
    "load_file",
    "parse",
    "read_text",
]
