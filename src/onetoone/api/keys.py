"""API keys: created by ``onetoone apikey create``, stored as SHA-256 hashes with scopes.

Keys can also come from the configuration (``[api.keys.NAME] sha256 = ..., scopes = [...]``:
hashes only, so the file holds no secret) or from the environment variable
``ONETOONE_API_KEYS``, a JSON object mapping each key to its scopes (for secret managers):
``{"oto_...": ["decisions", "events:write"]}``. ``admin`` grants every scope.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from onetoone.errors import ConfigError, InvalidInputError, NotFoundError
from onetoone.interact.settings import SCOPES, ApiSettings
from onetoone.store import Store

ENV_VAR = "ONETOONE_API_KEYS"
PREFIX = "oto_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who calls: the key's name and scopes."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def check_scopes(scopes: list[str]) -> list[str]:
    cleaned = [s.strip() for s in scopes if s.strip()]
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown or not cleaned:
        raise InvalidInputError(
            f"Unknown or missing scopes: {', '.join(unknown) or 'none given'}.",
            hint=f"Use one or more of: {', '.join(SCOPES)}.",
        )
    return list(dict.fromkeys(cleaned))


def create_key(store: Store, name: str, scopes: list[str]) -> str:
    """A new key (returned once, never stored in clear)."""
    scopes = check_scopes(scopes)
    if not name.strip():
        raise InvalidInputError("A key needs a name.")
    key = PREFIX + secrets.token_urlsafe(32)
    store.execute(
        "INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)",
        [name, hash_key(key), scopes, datetime.now(UTC).replace(tzinfo=None)],
    )
    return key


def revoke_key(store: Store, name: str) -> int:
    count = store.scalar(
        "SELECT count(*) FROM api_keys WHERE name = ? AND revoked_at IS NULL", [name]
    )
    if not count:
        raise NotFoundError(f"No valid API key named '{name}'.")
    store.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        [datetime.now(UTC).replace(tzinfo=None), name],
    )
    return int(count)


class KeyRing:
    """Every valid key by hash: table, configuration and environment."""

    def __init__(self, store: Store | None, settings: ApiSettings, env: str | None = None) -> None:
        self._keys: dict[str, Principal] = {}
        self._lock = threading.Lock()
        if store is not None:
            for name, key_hash, scopes in store.fetchall(
                "SELECT name, key_hash, scopes FROM api_keys WHERE revoked_at IS NULL"
            ):
                self._keys[key_hash] = Principal(name, frozenset(scopes))
        for name, cfg in settings.keys.items():
            self._keys[cfg.sha256] = Principal(name, frozenset(cfg.scopes))
        raw = os.environ.get(ENV_VAR) if env is None else env
        if raw:
            try:
                given = json.loads(raw)
                assert isinstance(given, dict)
                for i, (key, scopes) in enumerate(given.items()):
                    listed = scopes.split(",") if isinstance(scopes, str) else list(scopes)
                    self._keys[hash_key(key)] = Principal(
                        f"env-{i + 1}", frozenset(check_scopes(listed))
                    )
            except (ValueError, AssertionError, AttributeError, TypeError):
                raise ConfigError(
                    f"{ENV_VAR} must be a JSON object mapping each key to its "
                    'scopes, e.g. {"KEY": ["decisions"]}.'
                ) from None

    def __len__(self) -> int:
        return len(self._keys)

    def principal(self, key: str) -> Principal | None:
        return self._keys.get(hash_key(key))

    def add(self, key_hash: str, principal: Principal) -> None:
        with self._lock:
            self._keys[key_hash] = principal

    def remove(self, name: str) -> int:
        with self._lock:
            hashes = [h for h, p in self._keys.items() if p.name == name]
            for h in hashes:
                del self._keys[h]
        return len(hashes)
