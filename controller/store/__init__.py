"""The store shared by the api, the controller and the bridge: a SQLite file on one host (WAL
mode, the default) or PostgreSQL for several nodes (``KALLGLOT_DB=postgresql://…``)."""

from controller.store.db import DatabaseError, IntegrityError, Store, is_busy, is_nul_text, open_store

__all__ = ["DatabaseError", "IntegrityError", "Store", "is_busy", "is_nul_text", "open_store"]
