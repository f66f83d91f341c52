"""API keys: created by ``onetoone apikey create`` or ``POST /v1/apikeys``, stored as SHA-256
hashes with scopes; :class:`ApiKeys` (``Workspace.keys``) is the one place that creates and
revokes them.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from onetoone.clock import utcnow
from onetoone.errors import ConfigError, InvalidInputError, NotFoundError
from onetoone.interact.settings import SCOPES, ApiSettings
from onetoone.store import Connection, Store

ENV_VAR = "ONETOONE_API_KEYS"
PREFIX = "oto_"
T = TypeVar("T")
#: Runs a write on a connection inside a transaction and returns its result.
Writer = Callable[[Callable[[Connection], Any]], Any]


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

    def named(self, name: str) -> bool:
        """Whether a valid key is named ``name``."""
        with self._lock:
            return any(p.name == name for p in self._keys.values())

    def remove(self, name: str) -> int:
        with self._lock:
            hashes = [h for h, p in self._keys.items() if p.name == name]
            for h in hashes:
                del self._keys[h]
        return len(hashes)


class ApiKeys:
    """The keys of one workspace: create, revoke, list, and who a key belongs to.

    Writes go through a transaction of the store, or through the decision service's writer
    while it runs (:meth:`route`), so a key created or revoked is valid or refused at once.
    """

    def __init__(self, store: Store, settings: ApiSettings, env: str | None = None) -> None:
        self._store = store
        self._settings = settings
        self._env = env
        self._ring: KeyRing | None = None
        self._writer: Writer | None = None

    @property
    def ring(self) -> KeyRing:
        if self._ring is None:
            self._ring = KeyRing(self._store, self._settings, self._env)
        return self._ring

    def route(self, writer: Writer | None) -> None:
        """Send writes through ``writer`` (None: back to the store's own transactions)."""
        self._writer = writer

    def _write(self, work: Callable[[Connection], T]) -> T:
        if self._writer is not None:
            result: T = self._writer(work)
            return result
        with self._store.transaction() as con:
            return work(con)

    def principal(self, key: str) -> Principal | None:
        """Who holds ``key``, or None for an unknown or revoked key."""
        return self.ring.principal(key)

    def create(self, name: str, scopes: list[str]) -> str:
        """A new key for ``scopes``: returned once, stored only as its hash."""
        scopes = check_scopes(scopes)
        if not name.strip():
            raise InvalidInputError("A key needs a name.")
        key = PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)

        def insert(con: Connection) -> None:
            taken = con.execute("SELECT count(*) FROM api_keys WHERE name = ? AND revoked_at "
                                "IS NULL", [name]).fetchall()[0][0]
            if taken or self.ring.named(name):  # revoking one would revoke both
                raise InvalidInputError(
                    f"A valid API key is already named '{name}'.",
                    hint=f"Choose another name, or revoke it first ('onetoone apikey revoke "
                    f"{name}').")
            con.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)",
                        [name, digest, scopes, utcnow()])

        self._write(insert)
        self.ring.add(digest, Principal(name, frozenset(scopes)))
        return key

    def session_key(self, name: str, scopes: list[str]) -> str:
        """A key valid while this process runs, never stored (the local admin token that
        ``onetoone serve`` gives the CLI of the same user)."""
        key = PREFIX + secrets.token_urlsafe(32)
        self.ring.add(hash_key(key), Principal(name, frozenset(check_scopes(scopes))))
        return key

    def revoke(self, name: str) -> int:
        """Revoke every valid key named ``name``; returns how many."""
        now = utcnow()
        revoked = self._write(lambda con: len(con.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL "
            "RETURNING 1", [now, name]).fetchall()))
        removed = self.ring.remove(name)
        if not revoked and not removed:
            raise NotFoundError(f"No valid API key named '{name}'.")
        return max(revoked, removed)

    def list(self) -> list[dict[str, Any]]:
        """Every stored key (never the key itself): name, scopes, created and revoked times."""
        rows = self._store.fetchall(
            "SELECT name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at")
        return [{"name": n, "scopes": list(s), "created_at": c, "revoked_at": r}
                for n, s, c, r in rows]
