"""strangler gateway: everything on the request path (config, routing, proxying, capture, admin)."""
