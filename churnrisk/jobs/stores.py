"""The tracking store, the score store and the API keys of a set of settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnrisk.settings import Settings

if TYPE_CHECKING:
    from churnrisk.store import ApiKey, ScoreStore
    from churnrisk.tracking import Tracker


def open_tracker(settings: Settings) -> Tracker:
    """Return the tracker of ``settings``: its MLflow URI, else the embedded store."""
    from churnrisk.tracking import Tracker, tracking_uri

    return Tracker(settings.mlflow_tracking_uri or tracking_uri(settings.data_dir))


@contextmanager
def open_store(settings: Settings) -> Iterator[ScoreStore]:
    """Open the score store of ``settings``, migrated to this version's schema; close it after.

    Raises
    ------
    StoreError
        When the store cannot be reached or migrated.
    """
    from churnrisk.store import ScoreStore

    store = ScoreStore(settings.store_url)
    try:
        store.upgrade()
        yield store
    finally:
        store.close()


@dataclass(frozen=True)
class StoreStatus:
    """A migrated score store: its URL (password masked) and schema revision."""

    url: str
    revision: str | None


def upgrade_store(settings: Settings) -> StoreStatus:
    """Create or migrate the score store of ``settings``; return where it is and its revision."""
    with open_store(settings) as store:
        return StoreStatus(url=store.url, revision=store.revision())


@dataclass(frozen=True)
class CreatedKey:
    """A new API key: its text (shown once; only its hash is stored) and its record."""

    key: str
    record: ApiKey
    store_url: str


def create_api_key(settings: Settings, name: str, scope: str = "read") -> CreatedKey:
    """Create an API key named ``name`` with ``scope`` in the score store of ``settings``."""
    with open_store(settings) as store:
        key, record = store.create_key(name, scope)
        return CreatedKey(key=key, record=record, store_url=store.url)


def list_api_keys(settings: Settings) -> list[ApiKey]:
    """Return the API keys of the score store of ``settings`` (never their text)."""
    with open_store(settings) as store:
        return store.list_keys()


def revoke_api_key(settings: Settings, key_id: str) -> bool:
    """Revoke the key ``key_id``; return whether an active key of that id was revoked."""
    with open_store(settings) as store:
        return store.revoke_key(key_id)
