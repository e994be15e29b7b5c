"""Where rollout state is shared by every worker and every gateway replica: the port, its
SQLite and PostgreSQL adapters, and ``open_store(url)`` which picks one."""

from gateway.rollout.store.factory import open_store
from gateway.rollout.store.port import RolloutStore, StoreError, weights_of

__all__ = ["RolloutStore", "StoreError", "open_store", "weights_of"]
