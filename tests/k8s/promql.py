"""What the monitoring files ask of Prometheus: every query of a Grafana dashboard and of
a rule file, made concrete (Grafana's variables replaced), and the metric names a query
reads.  Pure text work; tests/k8s/prometheus.py does the talking to a real server."""

from __future__ import annotations

import re
from typing import Any

#: Grafana's built-in interval variables, and what a test evaluates them as.
INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "5m"}

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
    | {"group_left", "group_right"}
)


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every ``expr`` anywhere in the dashboard (panels, rows' panels, ...), then the series
    selector of every ``label_values(SELECTOR, label)`` template variable."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                elif key != "templating":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(f"variable {variable['name']}: not a label_values() query: {text}")
        found.append(match.group(1))
    return found


def rule_queries(rules: dict[str, Any]) -> dict[str, str]:
    """A Prometheus rule file's expressions, by alert (or recording rule) name."""
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
    }


def concrete(expr: str) -> str:
    """``expr`` as Prometheus can run it: intervals fixed, template variables match all.

    Variables are only meant inside regex matchers (``label=~"$route"``); anywhere else
    ``.*`` would not be what Grafana sends, so that is refused."""
    for name, value in INTERVALS.items():
        expr = expr.replace(name, value)
    for match in _VARIABLE.finditer(expr):
        if not re.search(r'=~\s*"[^"]*$', expr[: match.start()]):
            raise ValueError(f"template variable {match.group(0)} outside a =~ matcher: {expr}")
    return _VARIABLE.sub(".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def template_variables(expr: str) -> set[str]:
    """The dashboard variables an expression uses (``$route``, ``${route}``)."""
    return {a or b for a, b in _VARIABLE.findall(expr)} - {n[1:] for n in INTERVALS}
