"""Production equivalent: routes.yaml rendered to Istio VirtualService, DestinationRule and
ServiceEntry manifests (pure, :mod:`~gateway.istio.render`), VirtualServices imported
back into routes (:mod:`~gateway.istio.importer`), and ``strangler istio`` commands."""

from gateway.istio.importer import ImportError_, import_virtual_service
from gateway.istio.render import Rendered, RenderError, render

__all__ = ["ImportError_", "RenderError", "Rendered", "import_virtual_service", "render"]
