"""HTTP/1.1 on both sides of the proxy.

* :mod:`~gateway.http.server`: the proxy's own HTTP/1.1 listener (accept, deadlines, drain),
  with :mod:`~gateway.http.connection` (one client connection), :mod:`~gateway.http.cycle`
  (one request answered below ASGI), :mod:`~gateway.http.websocket` (upgrades) and
  :mod:`~gateway.http.lifespan`;
* :mod:`~gateway.http.framing`, :mod:`~gateway.http.response`, :mod:`~gateway.http.head`:
  request and response framing and the request-head rules, pure (sans-I/O);
  :mod:`~gateway.http.llhttp` is the tokenizer the request framing is fed through;
* :mod:`~gateway.http.downstream`: the client side as the proxy sees it (``Request``,
  ``Responder``, and the ASGI adapter);
* :mod:`~gateway.http.upstream`: the pooled client to backends (``Transport``);
* :mod:`~gateway.http.exchange`: the records of a served exchange handed to mirror and capture;
* :mod:`~gateway.http.host`: the Host header a backend is sent.

Import the submodules; this package re-exports nothing so that importing one of them
stays cheap.
"""

__all__: list[str] = []
