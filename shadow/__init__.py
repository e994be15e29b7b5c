"""Shadow traffic: mirroring sampled requests to the new service and comparing the
responses field by field with noise cancellation.

The proxy hands copies to :class:`~shadow.mirror.Mirror` through its port; the pure
comparison is :mod:`shadow.compare` (with :mod:`shadow.noise` and
:mod:`shadow.sampling`), results go to a :mod:`shadow.store`, and :mod:`shadow.report`
turns them into evidence.  Shadow imports the gateway's lower layers (config, http,
metrics), never the proxy.
"""

from shadow.compare import Difference, Reply, Rules, compare
from shadow.mirror import Lane, Mirror

__all__ = ["Difference", "Lane", "Mirror", "Reply", "Rules", "compare"]
