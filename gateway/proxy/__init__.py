"""The request path: admission, routing, header rules, retries, outlier ejection, the
WebSocket relay, and the ports through which copies go to the mirror and to capture.

The proxy never imports :mod:`shadow` or :mod:`gateway.capture`; see
:mod:`gateway.proxy.ports`.
"""

from gateway.proxy.generation import Generation
from gateway.proxy.proxy import Proxy

__all__ = ["Generation", "Proxy"]
