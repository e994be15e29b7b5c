"""The shadow report: :mod:`~shadow.report.aggregate` computes the evidence per endpoint,
:mod:`~shadow.report.render` shows it as text, JSON or HTML."""

from shadow.report.aggregate import EndpointReport, Report, Thresholds, build, percentile
from shadow.report.render import render, to_html, to_json, to_text

__all__ = [
    "EndpointReport",
    "Report",
    "Thresholds",
    "build",
    "percentile",
    "render",
    "to_html",
    "to_json",
    "to_text",
]
