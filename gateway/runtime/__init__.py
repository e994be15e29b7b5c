"""Running the gateway: the supervisor process (``strangler run``), its worker processes,
the admin API, and the wiring of the proxy to capture and the shadow mirror.

Submodules: :mod:`~gateway.runtime.supervisor`, :mod:`~gateway.runtime.worker`,
:mod:`~gateway.runtime.admin`, :mod:`~gateway.runtime.wiring`.
"""

__all__: list[str] = []
