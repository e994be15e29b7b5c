"""strangler gateway: the reverse proxy and everything around it.

Subpackages, by layer (import-linter enforces who may import whom, see pyproject.toml):
``config`` (routes.yaml) < ``http`` and ``metrics`` < ``proxy``, ``capture``, ``istio``
(and the top-level ``shadow`` package) < ``runtime`` (supervisor, workers, admin,
wiring) < ``cli``.  ``types`` and ``tasks`` are shared by every layer.
"""

__all__: list[str] = []
