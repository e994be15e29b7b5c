"""The query helpers of the monitoring tests: they must find every metric name (a missed
name would let a dashboard name a metric that does not exist) and nothing else."""

from __future__ import annotations

import pytest

from tests.k8s.promql import concrete, dashboard_queries, metric_names, rule_queries


def test_metric_names_are_selectors_not_functions_labels_or_keywords() -> None:
    expr = """
      histogram_quantile(0.99, sum by (route, backend, le) (
        rate(strangler_request_duration_seconds_bucket{route=~"a|b", backend="x_total"}[5m])))
      / on (route) group_left(backend) max without (instance) (up offset 5m)
      and bool 1e3 > ignoring (kind) rate(errors_total[1m] @ 100)
      or vector(0) unless absent(other:recorded_rule)
    """
    assert metric_names(expr) == {
        "strangler_request_duration_seconds_bucket",
        "up",
        "errors_total",
        "other:recorded_rule",
    }


def test_concrete_fills_intervals_and_regex_variables_only() -> None:
    assert (
        concrete('sum(rate(x{route=~"$route", b=~"${backend}"}[$__rate_interval]))')
        == 'sum(rate(x{route=~".*", b=~".*"}[1m]))'
    )
    with pytest.raises(ValueError, match=r"\$route outside a =~ matcher"):
        concrete('x{route="$route"}')


def test_queries_are_found_in_nested_panels_and_variables() -> None:
    dashboard = {
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "a_total"}]}]},
            {"targets": [{"expr": "b_total"}, {"refId": "B"}]},
        ],
        "templating": {
            "list": [
                {"type": "datasource", "name": "datasource", "query": "prometheus"},
                {"type": "query", "name": "r", "query": {"query": "label_values(c_total, r)"}},
                {"type": "query", "name": "s", "query": 'label_values(d{r=~"$r"}, s)'},
            ]
        },
    }
    assert dashboard_queries(dashboard) == ["a_total", "b_total", "c_total", 'd{r=~"$r"}']
    rules = {
        "groups": [{"rules": [{"alert": "A", "expr": "x > 1"}, {"record": "r:x", "expr": "x"}]}]
    }
    assert rule_queries(rules) == {"A": "x > 1", "r:x": "x"}
