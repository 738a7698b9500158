"""SQLite store shared by the api, the controller and the bridge on one host (WAL mode)."""

from controller.store.db import Store, open_store

__all__ = ["Store", "open_store"]
