"""HTTP/1.1 on both sides of the proxy.

* :mod:`~gateway.http.server`: the proxy listener's protocol (requests served below ASGI);
* :mod:`~gateway.http.downstream`: the client side as the proxy sees it (``Request``,
  ``Responder``, and the ASGI adapter);
* :mod:`~gateway.http.upstream`: the pooled client to backends (``Transport``);
* :mod:`~gateway.http.exchange`: the records of a served exchange handed to mirror and capture;
* :mod:`~gateway.http.host`: the Host header a backend is sent.

Import the submodules; this package re-exports nothing so that importing one of them
stays cheap.
"""

__all__: list[str] = []
