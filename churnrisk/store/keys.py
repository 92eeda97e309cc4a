"""API keys: created once, stored as a hash, verified, listed and revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from churnrisk.errors import ConfigError
from churnrisk.store.database import Database
from churnrisk.store.schema import api_keys

#: API key scopes, each allowing what the ones before it do: ``read`` for the ``/v1``
#: reads, ``write`` also to record CS activities, ``admin`` also to manage keys.
SCOPES: tuple[str, ...] = ("read", "write", "admin")

_KEY_PREFIX = "crk_"
_KEY_ID_HEX = 16


@dataclass(frozen=True)
class ApiKey:
    """An API key's public record (never its text or hash)."""

    key_id: str
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest of an API key's full text.

    A plain, unsalted SHA-256 is the right hash here: keys are 256-bit random secrets
    (``secrets.token_urlsafe(32)``), so there is no dictionary to attack and a slow
    password hash (bcrypt, scrypt) would only slow down every request. Lone surrogates
    (text no client can send as UTF-8, but a decoded header may hold) are hashed as
    their code points, so any text has a hash and simply matches no key.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _key_id_of(key: str) -> str | None:
    """Return the key id of a well-formed key text ``crk_<key_id>_<secret>``, else None."""
    if not isinstance(key, str) or len(key) > 200 or not key.startswith(_KEY_PREFIX):
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or not parts[2]:
        return None
    key_id = parts[1]
    if len(key_id) != _KEY_ID_HEX or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id


def _api_key(row: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        scope=row["scope"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class KeyStore:
    """API keys in a score store's database.

    Parameters
    ----------
    database
        The store's database (schema at head).
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    def create_key(self, name: str, scope: str) -> tuple[str, ApiKey]:
        """Create an API key; return its text (shown once, never stored) and its record.

        The key text is ``crk_<key_id>_<secret>``: ``key_id`` is 16 random hex digits
        (public, shown in listings), ``secret`` is ``secrets.token_urlsafe(32)``. Only
        :func:`hash_key` of the text is stored.
        """
        if scope not in SCOPES:
            raise ConfigError(f"API key scope {scope!r} is not one of {', '.join(SCOPES)}")
        if not name.strip():
            raise ConfigError("an API key needs a name (who or what uses it)")
        key_id = secrets.token_hex(_KEY_ID_HEX // 2)
        key = f"{_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            key_id=key_id,
            name=name.strip(),
            scope=scope,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        with self._database.errors("create an API key"), self._database.writer.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    name=record.name,
                    scope=record.scope,
                    key_hash=hash_key(key),
                    created_at=record.created_at,
                    revoked_at=None,
                )
            )
        return key, record

    def verify_key(self, key: str) -> ApiKey | None:
        """Return the record of a valid, unrevoked key; None if unknown, malformed or revoked.

        The stored hash is compared with :func:`hmac.compare_digest`.
        """
        key_id = _key_id_of(key)
        if key_id is None:
            return None
        stmt = sa.select(api_keys).where(api_keys.c.key_id == key_id)
        with self._database.errors("verify an API key"), self._database.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        found = row._mapping
        if not hmac.compare_digest(found["key_hash"], hash_key(key)):
            return None
        if found["revoked_at"] is not None:
            return None
        return _api_key(found)

    def list_keys(self) -> list[ApiKey]:
        """Return every key's record (revoked ones included), oldest first."""
        stmt = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        with self._database.errors("list API keys"), self._database.engine.connect() as conn:
            return [_api_key(r._mapping) for r in conn.execute(stmt)]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; True when an active key was revoked, False if unknown or revoked."""
        stmt = (
            api_keys.update()
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        with (
            self._database.errors(f"revoke API key {key_id}"),
            self._database.writer.begin() as conn,
        ):
            return conn.execute(stmt).rowcount == 1
