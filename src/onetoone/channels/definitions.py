"""Campaigns created through the API (``POST /v1/campaigns``, docs/campaigns.md).

Their settings are the keys of a ``[campaigns.NAME]``, read and checked as the file's are (the
same checks, the same sentences), and kept in ``campaign_definitions``; :class:`Campaigns`
runs them like the file's, which come first. A name of the file is neither taken, changed nor
retired here. A retired campaign no longer runs; its runs, deliveries and status stay under
its name, which no other settings may take (the same settings bring it back).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from onetoone.channels.settings import CampaignConfig
from onetoone.clock import utcnow
from onetoone.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from onetoone.store import Connection, has_table

if TYPE_CHECKING:
    from onetoone.store import Store

TABLE = "campaign_definitions"
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONFIG_FILE = "onetoone.toml"

#: commits ``work(connection)`` and returns what it returned
Write = Callable[[Callable[[Connection], Any]], Any]


class Checks(Protocol):
    """What the workspace's configuration (``Config``) gives: the file's campaigns, and the
    check of one campaign's settings."""

    @property
    def campaigns(self) -> Mapping[str, CampaignConfig]: ...

    def campaign(self, name: str, settings: dict[str, Any],
                 where: str = ...) -> CampaignConfig: ...


@dataclass(frozen=True)
class Definition:
    """One campaign created through the API."""

    name: str
    #: its settings as stored (the keys of ``[campaigns.NAME]``, defaults filled in)
    settings: dict[str, Any]
    #: the settings checked against the configuration (unchecked when ``problem`` says why)
    campaign: CampaignConfig
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None
    #: why the configuration no longer allows it (it then does not run); None: it does
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "source": "api", **self.settings,
               "created_by": self.created_by, "created_at": _iso(self.created_at),
               "updated_at": _iso(self.updated_at), "retired_at": _iso(self.retired_at)}
        if self.problem is not None:
            out["problem"] = self.problem
        return out


class Definitions:
    """The campaigns of ``campaign_definitions`` in a workspace, read against its
    configuration; ``write`` commits a change (the decision service's writer while it runs,
    else a transaction of the store)."""

    def __init__(self, store: Store, config: Checks, write: Write | None = None) -> None:
        self.store, self.config = store, config
        self._write: Write = write or self._transaction

    @classmethod
    def of(cls, ws: Any) -> Definitions:
        """Those of the workspace ``ws``."""
        if not ws.running_service:
            return cls(ws.store, ws.config)
        writer = ws.decisions.writer
        return cls(ws.store, ws.config, lambda work: writer.write(lambda txn: work(txn.cur)))

    def _transaction(self, work: Callable[[Connection], Any]) -> Any:
        with self.store.transaction() as con:
            return work(con)

    # -- reading ------------------------------------------------------------------------
    def all(self) -> list[Definition]:
        """Every campaign created through the API, retired ones too, oldest first; a name
        the configuration file defines too is the file's (left out here)."""
        return [d for d in self._read() if d.name not in self.config.campaigns]

    def get(self, name: str) -> Definition | None:
        found = self._read(name)
        return found[0] if found and name not in self.config.campaigns else None

    def active(self) -> dict[str, CampaignConfig]:
        """The ones that run: not retired, and allowed by the configuration."""
        return {d.name: d.campaign for d in self.all()
                if d.retired_at is None and d.problem is None}

    def refuse(self, name: str) -> None:
        """Raise why the campaign ``name`` does not run when it was created through the API
        (retired, or no longer allowed by the configuration); nothing otherwise."""
        found = self.get(name)
        if found is None:
            return
        if found.retired_at is not None:
            raise ConflictError(f"The campaign '{name}' was retired on "
                                f"{_day(found.retired_at)}: it no longer runs.",
                                hint=f"Its status still reads (GET /v1/campaigns/{name}/status).")
        if found.problem is not None:
            raise ConflictError(f"The campaign '{name}' no longer passes the checks of "
                                f"{CONFIG_FILE}: {found.problem}",
                                hint=f"Change it (PUT /v1/campaigns/{name}) or retire it.")

    def _read(self, name: str | None = None) -> list[Definition]:
        cur = self.store.con.cursor()
        try:
            if not has_table(cur, TABLE):  # a read-only workspace of an older version
                return []
            rows = cur.execute(
                f"SELECT name, settings, created_by, created_at, updated_at, retired_at "
                f"FROM {TABLE} WHERE ? IS NULL OR name = ? ORDER BY created_at, name",
                [name, name]).fetchall()
        finally:
            cur.close()
        return [self._definition(*row) for row in rows]

    def _definition(self, name: str, text: str, created_by: str | None, created_at: datetime,
                    updated_at: datetime, retired_at: datetime | None) -> Definition:
        settings = json.loads(text)
        problem = None
        try:
            campaign = self.config.campaign(name, settings, where=TABLE)
        except ConfigError as exc:
            campaign, problem = CampaignConfig.model_construct(**settings), exc.user_message()
        return Definition(name, settings, campaign, created_by, created_at, updated_at,
                          retired_at, problem)

    # -- changes ------------------------------------------------------------------------
    def check(self, name: str, settings: dict[str, Any]) -> CampaignConfig:
        """The settings of a new or changed campaign, checked as ``[campaigns.NAME]`` is when
        the file is read: 422 with the same sentence."""
        self._not_in_file(name)
        if not NAME.fullmatch(name):
            raise InvalidInputError("A campaign name holds 1 to 64 letters, digits, '-' and "
                                    "'_'.")
        try:
            campaign = self.config.campaign(name, settings)
        except ConfigError as exc:
            raise InvalidInputError(str(exc), hint=exc.hint) from None
        return campaign

    def create(self, name: str, settings: dict[str, Any],
               actor: str) -> tuple[Definition, bool]:
        """Store a new campaign: (it, True); (it, False) when the name holds these very
        settings already (a request sent again). A retired name comes back with the
        settings it had only."""
        text = _text(self.check(name, settings))
        now = utcnow()

        def work(con: Connection) -> str:
            current = _current(con, name)
            if current is None:
                con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, NULL)",
                            [name, text, actor, now, now])
                return "created"
            same = current[0] == json.loads(text)
            if current[1] is None:
                return "same" if same else "taken"
            if not same:
                return "retired"
            con.execute(f"UPDATE {TABLE} SET retired_at = NULL, updated_at = ? WHERE name = ?",
                        [now, name])
            return "restored"

        outcome = self._write(work)
        if outcome == "taken":
            raise ConflictError(f"A campaign '{name}' exists already, with other settings.",
                                hint=f"Change it with PUT /v1/campaigns/{name}, or choose "
                                "another name.")
        if outcome == "retired":
            found = self._found(name)
            raise ConflictError(
                f"The campaign '{name}' was retired on {_day(found.retired_at)}; its runs keep "
                "the name, which cannot take other settings.",
                hint="Choose another name, or send the settings it had to bring it back.")
        return self._found(name), outcome != "same"

    def replace(self, name: str, settings: dict[str, Any]) -> tuple[Definition, bool]:
        """Replace the settings of a campaign created through the API: (it, whether they
        changed)."""
        text = _text(self.check(name, settings))
        now = utcnow()

        def work(con: Connection) -> str:
            current, state = _live(con, name)
            if state is not None:
                return state
            if current == json.loads(text):
                return "same"
            con.execute(f"UPDATE {TABLE} SET settings = ?, updated_at = ? WHERE name = ?",
                        [text, now, name])
            return "changed"

        outcome = self._write(work)
        if outcome == "missing":
            raise _missing(name)
        found = self._found(name)
        if outcome == "retired":
            raise ConflictError(f"The campaign '{name}' was retired on "
                                f"{_day(found.retired_at)}; it cannot be changed.",
                                hint="Create a new campaign under another name.")
        return found, outcome == "changed"

    def retire(self, name: str) -> tuple[Definition, bool]:
        """Retire a campaign created through the API: it no longer runs; (it, whether it ran
        until now)."""
        self._not_in_file(name)
        now = utcnow()

        def work(con: Connection) -> str:
            if (state := _live(con, name)[1]) is not None:
                return state
            con.execute(f"UPDATE {TABLE} SET retired_at = ?, updated_at = ? WHERE name = ?",
                        [now, now, name])
            return "done"

        outcome = self._write(work)
        if outcome == "missing":
            raise _missing(name)
        return self._found(name), outcome == "done"

    def _not_in_file(self, name: str) -> None:
        if name in self.config.campaigns:
            raise ConflictError(f"The campaign '{name}' is defined in {CONFIG_FILE}: it is "
                                "changed there, not through the API.",
                                hint=f"Edit [campaigns.{name}] in {CONFIG_FILE}, or choose "
                                "another name.")

    def _found(self, name: str) -> Definition:
        found = self.get(name)
        if found is None:
            raise _missing(name)
        return found


def _current(con: Connection, name: str) -> tuple[dict[str, Any], datetime | None] | None:
    """(settings, retired_at) of ``name`` as the change's transaction sees them."""
    rows = con.execute(f"SELECT settings, retired_at FROM {TABLE} WHERE name = ?",
                       [name]).fetchall()
    return (json.loads(rows[0][0]), rows[0][1]) if rows else None


def _live(con: Connection, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(settings, None) of a campaign that runs; (None, "missing" or "retired") else."""
    current = _current(con, name)
    if current is None:
        return None, "missing"
    return (None, "retired") if current[1] is not None else (current[0], None)


def _text(campaign: CampaignConfig) -> str:
    return json.dumps(campaign.model_dump(mode="json", by_alias=True), sort_keys=True,
                      ensure_ascii=False)


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"No campaign '{name}' created through the API.",
                         hint="Create it with POST /v1/campaigns.")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _day(moment: datetime | None) -> str:
    return "?" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"
