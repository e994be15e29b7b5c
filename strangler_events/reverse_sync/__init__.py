"""Reverse sync: the new service's events applied to the legacy system, so that legacy
features reading the legacy database keep seeing what the service now writes.

Configured per aggregate type (:class:`~strangler_events.reverse_sync.plan.SyncTarget`):
which events to apply (those the service wrote: ``metadata.source``), which event types
write the aggregate's state (a PUT of the state the event carries) and which delete it.
:mod:`.plan` decides (pure), :mod:`.http` writes through the legacy API, marked with its
origin so it is never captured again (:mod:`strangler_events.origin`), :mod:`.runner`
drives it with the resilient consumer (per-aggregate order, retries, dead-letter topic,
the inbox's record of applied event ids, lag), :mod:`.cli` is ``strangler reverse-sync``.
"""
