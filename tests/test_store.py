from pathlib import Path

import pytest

from controller.ids import has_prefix, new_id
from controller.settings import Settings, SettingsError
from controller.store import open_store
from controller.store.migrations import MIGRATIONS


def test_store_is_wal_and_migrated(tmp_path: Path) -> None:
    store = open_store(tmp_path / "k.db")
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.close()
    # Re-opening an up-to-date store is a no-op.
    again = open_store(tmp_path / "k.db")
    assert again.schema_version() == MIGRATIONS[-1][0]
    again.close()


def test_transaction_rolls_back_everything(store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('org_A', 'a', 0)")
        raise RuntimeError("boom")
    assert store.query("SELECT * FROM organizations") == []


def test_ids_are_prefixed_sortable_and_sip_safe() -> None:
    first, second = new_id("sess"), new_id("sess")
    assert has_prefix(first, "sess") and first[5:].isalnum()
    assert len({first, second}) == 2
    assert not has_prefix("sess_bad-id", "sess")
    with pytest.raises(ValueError):
        new_id("nope")


def test_settings_from_env_and_overrides() -> None:
    s = Settings.from_env({"KALLGLOT_DB": "/x/y.db", "KALLGLOT_API_PORT": "9000"}, api_port=9100)
    assert s.db_path == Path("/x/y.db") and s.api_port == 9100
    with pytest.raises(SettingsError, match="KALLGLOT_API_PORT"):
        Settings.from_env({"KALLGLOT_API_PORT": "http"})
