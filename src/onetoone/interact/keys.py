"""API keys: created by ``onetoone apikey create`` or ``POST /v1/apikeys``, stored as SHA-256
hashes with scopes; :class:`ApiKeys` (``Workspace.keys``) is the one place that creates, rotates
and revokes them, and writes each change to the audit log.

Keys can also come from the configuration (``[api.keys.NAME] sha256 = ..., scopes = [...]``:
hashes only, so the file holds no secret) or from the environment variable
``ONETOONE_API_KEYS``, a JSON object mapping each key to its scopes (for secret managers):
``{"oto_...": ["decisions", "events:write"]}``. ``admin`` grants every scope.

A stored key may expire (``api_keys.expires_at``); rotating a key gives a new secret for the
same name and scopes and lets the old one expire after a grace period, so a rotated pair shares
its name. :meth:`ApiKeys.authenticate` checks a request's key (unknown or expired: 401; over
``[api] rate_limit``: 429) and :data:`CALLER` holds the caller for the rest of the request, so
that the decision service bounds the customers a key creates
(:meth:`ApiKeys.bound_new_customers`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from onetoone.clock import utcnow
from onetoone.errors import (
    AuthenticationError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from onetoone.interact.settings import SCOPES, ApiSettings
from onetoone.privacy.audit import audit_row, cli_actor
from onetoone.store import Connection, Store

ENV_VAR = "ONETOONE_API_KEYS"
PREFIX = "oto_"
#: grace period of a rotated key when none is given
DEFAULT_GRACE = timedelta(days=7)
T = TypeVar("T")
#: Runs a write on a connection inside a transaction and returns its result.
Writer = Callable[[Callable[[Connection], Any]], Any]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who calls: the key's name and scopes, and when the key expires (naive UTC; None:
    never)."""

    name: str
    scopes: frozenset[str]
    expires_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


#: The caller of the request being served (set by the API's key dependency), None elsewhere.
CALLER: ContextVar[Principal | None] = ContextVar("onetoone_caller", default=None)


@dataclass(frozen=True)
class Rotated:
    """A rotated key: the new secret (shown once) and when the old one stops being valid."""

    name: str
    scopes: list[str]
    key: str
    expires_at: datetime | None
    previous_expires_at: datetime


def check_scopes(scopes: list[str]) -> list[str]:
    cleaned = [s.strip() for s in scopes if s.strip()]
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown or not cleaned:
        raise InvalidInputError(
            f"Unknown or missing scopes: {', '.join(unknown) or 'none given'}.",
            hint=f"Use one or more of: {', '.join(SCOPES)}.",
        )
    return list(dict.fromkeys(cleaned))


def _check_name(name: str) -> None:
    if not name.strip():
        raise InvalidInputError("A key needs a name.")
    try:
        audit_row("", "apikey.create", details={"name": name})
    except ValueError:  # the audit log refuses what looks like personal data
        raise InvalidInputError(
            "A key name may not look like an e-mail or a phone number: it is written to the "
            "audit log.", hint="Name the key after what uses it, e.g. 'website'.") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dh])", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """``90d`` (days) or ``12h`` (hours)."""
    found = _DURATION.fullmatch(text.strip())
    try:
        if found is None:
            raise ValueError
        amount = float(found[1])
        return timedelta(days=amount) if found[2].lower() == "d" else timedelta(hours=amount)
    except (ValueError, OverflowError):
        raise InvalidInputError(f"'{text}' is not a duration.",
                                hint="Write a number of days or hours: 90d, 12h.") from None


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """When a key expires (naive UTC), from a duration after ``now`` (``90d``, ``12h``), a date
    (``2027-01-31``: its first instant, UTC) or an ISO 8601 time (UTC without an offset)."""
    if _DURATION.fullmatch(text.strip()):
        try:
            return (now or utcnow()) + parse_duration(text)
        except OverflowError:
            raise InvalidInputError(f"'{text}' is too far ahead.") from None
    try:
        return utc_naive(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise InvalidInputError(
            f"'{text}' is neither a duration nor a date.",
            hint="For example: 90d, 12h, 2027-01-31 or 2027-01-31T18:00+01:00.") from None


def utc_naive(when: datetime) -> datetime:
    """``when`` in naive UTC (a time without an offset is UTC already)."""
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class TokenBuckets:
    """A token bucket per name: ``rate`` tokens a second, at most ``burst`` kept. A take is a
    few operations under one lock, held for nothing else."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, count: float = 1) -> float:
        """0 when ``count`` tokens were taken; else none is, and the seconds until they would
        be there (infinite above ``burst``)."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= count:
                self._buckets[name] = (tokens - count, now)
                return 0.0
            self._buckets[name] = (tokens, now)
        return float("inf") if count > self.burst else (count - tokens) / self.rate


class KeyRing:
    """Every key not revoked, by hash: table, configuration and environment. An expired key
    stays here, so that its caller learns that it expired."""

    def __init__(self, store: Store | None, settings: ApiSettings, env: str | None = None) -> None:
        self._keys: dict[str, Principal] = {}
        self._lock = threading.Lock()
        if store is not None:
            for name, key_hash, scopes, expires_at in store.fetchall(
                "SELECT name, key_hash, scopes, expires_at FROM api_keys WHERE revoked_at IS NULL"
            ):
                self._keys[key_hash] = Principal(name, frozenset(scopes), expires_at)
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

    def get(self, key_hash: str) -> Principal | None:
        """The holder of the key of this hash, expired or not."""
        return self._keys.get(key_hash)

    def principal(self, key: str) -> Principal | None:
        return self._keys.get(hash_key(key))

    def add(self, key_hash: str, principal: Principal) -> None:
        with self._lock:
            self._keys[key_hash] = principal

    def named(self, name: str, now: datetime | None = None) -> bool:
        """Whether a key named ``name`` is valid (at ``now``, default now)."""
        now = now or utcnow()
        with self._lock:
            return any(p.name == name and not p.expired(now) for p in self._keys.values())

    def expire(self, hashes: list[str], when: datetime) -> None:
        """The keys of ``hashes`` expire at ``when`` (or sooner, if they did)."""
        with self._lock:
            for h in hashes:
                p = self._keys.get(h)
                if p is not None and (p.expires_at is None or p.expires_at > when):
                    self._keys[h] = replace(p, expires_at=when)

    def holders(self, name: str) -> list[Principal]:
        """The holders of the keys named ``name``, expired or not."""
        with self._lock:
            return [p for p in self._keys.values() if p.name == name]

    def remove(self, name: str) -> int:
        """Forget every key named ``name``; returns how many."""
        with self._lock:
            hashes = [h for h, p in self._keys.items() if p.name == name]
            for h in hashes:
                del self._keys[h]
        return len(hashes)


class ApiKeys:
    """The keys of one workspace: create, rotate, revoke, list, and who a key belongs to.

    Writes go through a transaction of the store, or through the decision service's writer
    while it runs (:meth:`route`), so a key created or revoked is valid or refused at once.
    Each change writes an audit entry in the same transaction: actor ``key:NAME`` through the
    API (the routes pass it), the operating-system user (``cli:USER``) otherwise.
    """

    def __init__(self, store: Store, settings: ApiSettings, env: str | None = None) -> None:
        self._store = store
        self._settings = settings
        self._env = env
        self._ring: KeyRing | None = None
        self._writer: Writer | None = None
        #: requests by key hash ([api] rate_limit, rate_burst); None: no limit
        self.requests = (TokenBuckets(settings.rate_limit, settings.burst)
                         if settings.rate_limit > 0 else None)
        per_minute = settings.new_identities_per_minute
        #: new customers by key name ([api] new_identities_per_minute); None: no bound
        self.identities = TokenBuckets(per_minute / 60, per_minute) if per_minute else None

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

    @staticmethod
    def _audit(con: Connection, actor: str | None, action: str, name: str,
               scopes: list[str]) -> None:
        """One audit entry, in the transaction of the change."""
        actor = actor or cli_actor()
        try:
            row = audit_row(actor, action, details={"name": name, "scopes": scopes})
        except ValueError:  # a name given before names were checked, that looks personal
            row = audit_row(actor, action, details={"name": None, "scopes": scopes})
        # "at" quoted: a keyword of the SQL parser
        con.execute('INSERT INTO audit_log ("at", actor, action, customer_id, details) '
                    "VALUES (?, ?, ?, ?, ?)", [row["at"], row["actor"], row["action"],
                                                row["customer_id"], row["details"]])

    # -- requests -----------------------------------------------------------------------
    def principal(self, key: str) -> Principal | None:
        """Who holds ``key``, or None for an unknown, revoked or expired key."""
        found = self.ring.principal(key)
        return None if found is None or found.expired(utcnow()) else found

    def authenticate(self, key: str) -> Principal:
        """Who holds ``key``, checked for a request: 401 for an unknown, revoked or expired
        key, 429 over ``[api] rate_limit`` (counted per key)."""
        digest = hash_key(key)
        found = self.ring.get(digest)
        if found is None:
            raise AuthenticationError(
                "This API key is not valid.", hint="Create one with 'onetoone apikey create'.")
        if found.expires_at is not None and found.expired(utcnow()):
            raise AuthenticationError(
                f"This API key expired on {_when(found.expires_at)}; create a new one or "
                f"rotate it ('onetoone apikey rotate {found.name}').")
        if self.requests is not None:
            wait = self.requests.take(digest)
            if wait:
                raise RateLimitedError(
                    f"This API key sent more than {self._settings.rate_limit:g} requests a "
                    f"second (bursts of {self._settings.burst}); try again later.",
                    retry_after=wait)
        return found

    def bound_new_customers(self, count: Callable[[], int]) -> None:
        """Count the customers the request being served would create (``count()``, called
        only for a bounded caller: a key without ``admin``) against its key's bound of
        ``[api] new_identities_per_minute``: 429, with nothing counted, over it."""
        caller = CALLER.get()
        if caller is None or self.identities is None or "admin" in caller.scopes:
            return
        wanted = count()
        if wanted <= 0:
            return
        wait = self.identities.take(caller.name, wanted)
        if wait:
            bound = self._settings.new_identities_per_minute
            raise RateLimitedError(
                f"This request would create {wanted} new customer(s) and this API key may "
                f"create at most {bound} a minute; nothing was created.",
                hint="Split the batch." if wanted > bound else "Try again later.",
                retry_after=60 if wanted > bound else wait)

    # -- changes ------------------------------------------------------------------------
    def create(self, name: str, scopes: list[str], expires_at: datetime | None = None,
               actor: str | None = None) -> str:
        """A new key for ``scopes``, valid until ``expires_at`` (None: never): returned once,
        stored only as its hash."""
        scopes = check_scopes(scopes)
        _check_name(name)
        now = utcnow()
        expires_at = self._future(expires_at, now)
        key = PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)

        def insert(con: Connection) -> None:
            taken = con.execute(
                "SELECT count(*) FROM api_keys WHERE name = ? AND revoked_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?)", [name, now]).fetchall()[0][0]
            if taken or self.ring.named(name, now):  # revoking one would revoke both
                raise InvalidInputError(
                    f"A valid API key is already named '{name}'.",
                    hint=f"Choose another name, rotate it ('onetoone apikey rotate {name}') or "
                    f"revoke it first ('onetoone apikey revoke {name}').")
            self._insert(con, name, digest, scopes, now, expires_at)
            self._audit(con, actor, "apikey.create", name, scopes)

        self._write(insert)
        self.ring.add(digest, Principal(name, frozenset(scopes), expires_at))
        return key

    @staticmethod
    def _future(expires_at: datetime | None, now: datetime) -> datetime | None:
        if expires_at is None:
            return None
        expires_at = utc_naive(expires_at)
        if expires_at <= now:
            raise InvalidInputError(
                f"A key cannot expire in the past ({_when(expires_at)}).",
                hint="Give a later time, or a duration such as 90d.")
        return expires_at

    @staticmethod
    def _insert(con: Connection, name: str, digest: str, scopes: list[str], now: datetime,
                expires_at: datetime | None) -> None:
        con.execute("INSERT INTO api_keys (name, key_hash, scopes, created_at, revoked_at, "
                    "expires_at) VALUES (?, ?, ?, ?, NULL, ?)",
                    [name, digest, scopes, now, expires_at])

    def rotate(self, name: str, grace: timedelta = DEFAULT_GRACE,
               expires_at: datetime | None = None, actor: str | None = None) -> Rotated:
        """A new secret for the stored key ``name`` (same name and scopes; expired or not, but
        not revoked), shown once; the old one stays valid for ``grace``, then expires. The new
        key expires at ``expires_at``, by default after the lifetime of the newest one it
        replaces (never if that one never expired)."""
        if grace < timedelta(0):
            raise InvalidInputError("The grace period cannot be negative.")
        now = utcnow()
        expires_at = self._future(expires_at, now)
        key = PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(key)
        ends = now + grace

        def swap(con: Connection) -> tuple[list[str], list[str], datetime | None]:
            rows = con.execute(
                "SELECT key_hash, scopes, created_at, expires_at FROM api_keys WHERE name = ? "
                "AND revoked_at IS NULL ORDER BY created_at DESC", [name]).fetchall()
            if not rows:
                raise NotFoundError(
                    f"No stored API key named '{name}' (revoked keys are not rotated).",
                    hint="Keys of the configuration or the environment are changed there.")
            _, scopes, created_at, current_end = rows[0]
            scopes = list(scopes)
            lifetime = None if current_end is None else current_end - created_at
            new_end = expires_at or (None if lifetime is None else now + lifetime)
            old = [r[0] for r in rows]
            # the old keys expire at the end of the grace (or when they did, if sooner)
            con.execute("UPDATE api_keys SET expires_at = ? WHERE name = ? AND revoked_at IS "
                        "NULL AND (expires_at IS NULL OR expires_at > ?)", [ends, name, ends])
            self._insert(con, name, digest, scopes, now, new_end)
            self._audit(con, actor, "apikey.rotate", name, scopes)
            return old, scopes, new_end

        old, scopes, new_end = self._write(swap)
        self.ring.expire(old, ends)
        self.ring.add(digest, Principal(name, frozenset(scopes), new_end))
        return Rotated(name, scopes, key, new_end, ends)

    def session_key(self, name: str, scopes: list[str]) -> str:
        """A key valid while this process runs, never stored (the local admin token that
        ``onetoone serve`` gives the CLI of the same user)."""
        key = PREFIX + secrets.token_urlsafe(32)
        self.ring.add(hash_key(key), Principal(name, frozenset(check_scopes(scopes))))
        return key

    def revoke(self, name: str, actor: str | None = None) -> int:
        """Revoke every key named ``name`` not revoked yet (a rotated pair, an expired key);
        returns how many."""
        now = utcnow()

        def work(con: Connection) -> int:
            rows = con.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL "
                "RETURNING scopes", [now, name]).fetchall()
            held = self.ring.holders(name)
            if not rows and not held:
                raise NotFoundError(f"No valid API key named '{name}'.")
            scopes = sorted({s for (listed,) in rows for s in listed}
                            | {s for p in held for s in p.scopes})
            self._audit(con, actor, "apikey.revoke", name, scopes)
            return max(len(rows), len(held))

        count = self._write(work)
        self.ring.remove(name)
        return count

    def list(self) -> list[dict[str, Any]]:
        """Every stored key (never the key itself): name, scopes, created, expiry and revoked
        times."""
        rows = self._store.fetchall(
            "SELECT name, scopes, created_at, expires_at, revoked_at FROM api_keys "
            "ORDER BY created_at")
        return [{"name": n, "scopes": list(s), "created_at": c, "expires_at": e,
                 "revoked_at": r} for n, s, c, e, r in rows]
