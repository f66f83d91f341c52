"""The Workspace: one customer base, a folder with ``onetoone.toml`` and ``onetoone.duckdb``.

The one entry object: every face (Python, CLI, REST API, jobs, dashboard) is a thin adapter over
it. It reads the configuration, opens the store and hands each domain package its own settings;
its parts carry the domain's words: ``ws.ingest()``, ``ws.identity`` (run, merge, unmerge,
review, explain), ``ws.score()``, ``ws.decisions`` (decide, respond, consents, outbound lists),
``ws.keys``, ``ws.lift()``, ``ws.kpis()``, ``ws.report()``. See docs/architecture.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from onetoone.config import CONFIG_FILE, Config, default_config_text, load_config
from onetoone.errors import ConfigError, InvalidInputError, NotFoundError, WorkspaceError
from onetoone.ingest import SourceLoader, SourceResult
from onetoone.ingest._loader import RowsRead
from onetoone.ingest.settings import SourceConfig
from onetoone.schema import ENTITIES
from onetoone.store import DATABASE_FILE, Store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from onetoone.channels.campaigns import Campaigns
    from onetoone.channels.triggers import Triggers
    from onetoone.differentiate.defection import DifferentiateRun
    from onetoone.differentiate.scores import Scores
    from onetoone.differentiate.value import ValueResult
    from onetoone.identify import IdentifyResult, IdentityResolver
    from onetoone.interact.keys import ApiKeys
    from onetoone.interact.service import DecisionService
    from onetoone.measure.abtest import ABTestResult
    from onetoone.measure.lift import Lift
    from onetoone.measure.uplift import UpliftRun
    from onetoone.privacy.rights import Privacy
    from onetoone.progress import Progress

class Workspace:
    """A customer base on disk.

    >>> ws = Workspace.init("shop")          # doctest: +SKIP
    >>> ws.ingest()                          # doctest: +SKIP
    """

    def __init__(self, directory: Path | str = ".", *, read_only: bool = False) -> None:
        self.root = Path(directory).resolve()
        config_path = self.root / CONFIG_FILE
        if not config_path.is_file():
            raise WorkspaceError(
                f"{self.root} is not a onetoone workspace (no {CONFIG_FILE}).",
                hint="Run 'onetoone init' there, or pass --workspace DIR.",
            )
        self.config: Config = load_config(config_path)
        self.store = Store(self.root / DATABASE_FILE, read_only=read_only)
        self._keys: ApiKeys | None = None
        self._decisions: DecisionService | None = None
        #: set by ``onetoone serve`` before the decision service starts: it then reads every
        #: profile at start (``[api] preload_profiles``); a command reads those it needs
        self.serving = False

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def init(cls, directory: Path | str = ".", *, name: str | None = None,
             config_text: str | None = None) -> Workspace:
        """Create a workspace folder (or open it if it already is one)."""
        root = Path(directory).resolve()
        root.mkdir(parents=True, exist_ok=True)
        config_path = root / CONFIG_FILE
        if not config_path.exists():
            config_path.write_text(config_text or default_config_text(name or root.name),
                                   encoding="utf-8")
        return cls(root)

    @classmethod
    def open(cls, directory: Path | str = ".") -> Workspace:
        return cls(directory)

    @contextmanager
    def reader(self) -> Iterator[Workspace]:
        """This workspace on its own cursor, for the time of a block: what a request of the
        service (another thread) uses to read whole tables, for the report or the CLI, and
        what a job runs its step on, in one transaction (``store.atomic()``)."""
        other = object.__new__(Workspace)
        other.root, other.config = self.root, self.config
        other._keys, other._decisions, other.serving = self._keys, None, self.serving
        with self.store.cursor() as store:
            other.store = store
            yield other

    def close(self) -> None:
        if self._decisions is not None:
            self._decisions.close()
            self._decisions = None
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- ingest -------------------------------------------------------------------------
    def ingest(
        self,
        source: str | None = None,
        *,
        path: Path | str | None = None,
        entity: str | None = None,
        columns: dict[str, str] | None = None,
        identifiers: dict[str, str] | None = None,
        options: dict[str, object] | None = None,
        progress: RowsRead | None = None,
    ) -> list[SourceResult]:
        """Load every declared source, one source by name, or an ad-hoc file.

        Each source loads atomically. A file already loaded is skipped; a changed file adds
        only its new or changed rows.
        """
        if path is not None or (source and source not in self.config.sources and
                                Path(source).exists()):
            return [self._ingest_path(Path(path or str(source)), entity, columns or {},
                                      identifiers or {}, options or {}, progress)]
        if source is not None:
            if source not in self.config.sources:
                known = ", ".join(self.config.sources) or "none declared"
                raise NotFoundError(
                    f"No source named '{source}' and no such file.",
                    hint=f"Sources in {CONFIG_FILE}: {known}.",
                )
            names = [source]
        else:
            names = list(self.config.sources)
            if not names:
                raise ConfigError(
                    f"{CONFIG_FILE} declares no source.",
                    hint="Add a [sources.NAME] section, or run 'onetoone ingest PATH "
                    "--entity ENTITY'.",
                )
        erased = self._erasure_key()
        return [
            SourceLoader(self.store, name, self.config.sources[name], self.config.workspace,
                         self.root, progress, erased).load()
            for name in self._load_order(names)
        ]

    def _erasure_key(self) -> bytes | None:
        """The erasure list's key when people were erased (their records then go to
        quarantine at load), after making its table on this store's connection."""
        from onetoone.privacy.suppression import erased_list

        return erased_list(self.store.con, self.root)

    def _load_order(self, names: list[str]) -> list[str]:
        """Customers sources first, so that events find the profiles they name."""
        return sorted(names, key=lambda n: self.config.sources[n].entity != "customers")

    def _ingest_path(self, path: Path, entity: str | None, columns: dict[str, str],
                     identifiers: dict[str, str], options: dict[str, object],
                     progress: RowsRead | None) -> SourceResult:
        if entity is None:
            raise ConfigError(
                f"Loading {path} directly needs its entity.",
                hint=f"Add --entity, one of: {', '.join(ENTITIES)}.",
            )
        if not path.exists():
            raise NotFoundError(f"No file or folder {path}.")
        name = re.sub(r"[^A-Za-z0-9_\-]", "_", path.stem.split(".")[0]) or "adhoc"
        try:
            config = SourceConfig(entity=entity, path=str(path.resolve()), columns=columns,
                                  identifiers=identifiers, **options)
        except ValueError as exc:
            raise ConfigError(f"Invalid options for {path.name}: {exc}.") from None
        full = Config(workspace=self.config.workspace, sources={name: config})
        full.check()
        return SourceLoader(self.store, name, config, self.config.workspace, self.root,
                            progress, self._erasure_key()).load()

    # -- look --------------------------------------------------------------------------
    def summary(self) -> dict[str, int]:
        """Rows per table of the open data model."""
        return self.store.table_counts()

    # -- identify -----------------------------------------------------------------------
    @property
    def identity(self) -> IdentityResolver:
        """Identity resolution of this base: ``run``, ``merge``, ``unmerge``, ``review`` (and
        ``pending_reviews``), ``explain``."""
        from onetoone.identify import IdentityResolver

        return IdentityResolver(self.store, self.config.identify)

    def identify(self, *, full: bool = False,
                 progress: Progress | None = None) -> IdentifyResult:
        """Link every customer record into customers; only new records unless ``full``.
        ``progress`` is told each part and the fraction done."""
        return self.identity.run(full=full, progress=progress)

    def customer(self, customer_id: str, *, why: bool = False) -> dict[str, Any]:
        """One customer: golden record, source records and, with ``why``, the evidence."""
        return self.identity.explain(customer_id, why=why)

    # -- differentiate -------------------------------------------------------------------
    @property
    def scores(self) -> Scores:
        """Value, needs and defection scores of this base (``run``, ``defection``,
        ``latest_as_of``); :meth:`score` is ``onetoone score``."""
        from onetoone.differentiate.scores import Scores

        c = self.config
        return Scores(self.store, c.value, c.defection, c.needs, c.workspace.timezone)

    def score(self, as_of: Any = None, *, calibration_end: Any = None,
              write: bool = True, progress: Progress | None = None) -> ValueResult:
        """Value of every customer as of ``as_of`` (default: the last transaction day).

        Fills ``customer_scores`` (one row per customer and as-of date; re-scoring replaces);
        see docs/value-models.md for the model choice, the fallbacks and the tiers. With
        ``write``, needs segments, defection risk, the monitor and the monthly KPIs follow.
        ``progress`` is told each part and the fraction done.
        """
        from onetoone.progress import silent, within

        tell = progress or silent
        result = self.scores.run(as_of, calibration_end=calibration_end, write=write,
                                 progress=within(tell, 0.0, 0.99) if write else tell)
        if write:
            tell("KPIs", 0.99)
            self.kpis()
            tell("done", 1.0)
        return result

    def score_defection(self, as_of: Any = None, *,
                        progress: Progress | None = None) -> DifferentiateRun:
        """Needs segments, defection risk with reasons and the mass-defection monitor, merged
        into ``customer_scores`` (see docs/defection-and-needs.md); ``score()`` runs it."""
        return self.scores.defection(as_of, progress=progress)

    # -- measure ------------------------------------------------------------------------
    def ab_test(self, name: str) -> ABTestResult:
        """Results of ``[ab_tests.NAME]``: each arm's conversion, and each arm against the
        first with a confidence sequence valid at every look (docs/measurement.md)."""
        from onetoone.measure.abtest import ab_test_results

        test = self.config.ab_tests.get(name)
        if test is None:
            raise NotFoundError(f"No A/B test '{name}' in {CONFIG_FILE}.",
                                hint=f"Tests: {', '.join(self.config.ab_tests) or 'none'}.")
        with self.store.cursor() as view:  # callers may be threads of the service
            return ab_test_results(view.con, name, list(test.actions), alpha=test.alpha,
                                   window_days=self.config.control_groups.window_days,
                                   started_at=_timestamp(test.started_at, "started_at"))

    def uplift(self, action: str, *, method: str = "t_learner", learner: str = "lightgbm",
               window_days: int | None = None) -> UpliftRun:
        """Learn ``action``'s uplift from its decisions (treated against withheld) and write it
        for every scored customer, for decisions where the action has ``rank_by = "uplift"``;
        see docs/measurement.md."""
        from onetoone.measure.uplift import score_action_uplift

        config = self.config.actions.get(action)
        if config is None:
            raise NotFoundError(f"No action '{action}' in the catalog.",
                                hint=f"Actions: {', '.join(self.config.actions) or 'none'}.")
        with self.store.transaction() as con:
            return score_action_uplift(
                con, action, window_days=window_days or self.config.control_groups.window_days,
                min_uplift=config.min_uplift, method=method, learner=learner)

    def kpis(self, *, write: bool = True) -> pd.DataFrame:
        """Every KPI of every month (``month``, ``kpi``, ``value``, ``base``), recomputed from
        the tables and, with ``write``, stored in ``kpis``; see docs/measurement.md."""
        from onetoone.measure.kpis import compute_kpis, write_kpis

        frame = compute_kpis(self.store.con, self.config.value.exclude_statuses,
                             self.config.workspace.timezone)
        if write:
            with self.store.transaction() as con:
                write_kpis(con, frame)
        return frame

    def sql(self, query: str, *, limit: int | None = None) -> tuple[pa.Table, bool]:
        """Run one read-only SQL statement on the workspace's tables (``onetoone sql``): its
        rows as an Arrow table (at most ``limit``) and whether there were more. Writes are
        refused with one sentence; the data model is docs/data-model.md."""
        from onetoone.store import read_query

        with self.store.cursor() as view:  # callers may be threads of the service
            return read_query(view, query, limit)

    def key_figures(self, months: int | None = 12) -> pd.DataFrame:
        """The KPIs stored by the last ``onetoone score``: months as rows (the last ``months``,
        latest last), KPIs as columns."""
        from onetoone.measure.kpis import kpi_table, stored_kpis

        with self.store.cursor() as view:  # callers may be threads of the service
            return kpi_table(stored_kpis(view.con), months)

    def lift(self, *, action: str | None = None, channel: str | None = None,
             campaign: str | None = None, window_days: int | None = None, since: Any = None,
             until: Any = None, detect: float | None = None) -> list[Lift]:
        """What the contacts changed, treated against control: all marketing first, then each
        action (or only ``action``), on one ``channel`` when given; outcomes within
        ``window_days`` (default ``[control_groups] window_days``) of each customer's first
        decision since ``since``; the decisions of one ``campaign`` run (its run id) when given.
        See docs/measurement.md."""
        from onetoone.measure.lift import actions_with_decisions, lift

        days = window_days or self.config.control_groups.window_days
        start, end = _timestamp(since, "since"), _timestamp(until, "until")
        with self.store.cursor() as view:  # callers may be threads of the service
            cur = view.con
            decided = actions_with_decisions(cur, channel, campaign)
            if campaign is not None and not decided:
                raise NotFoundError(f"No decision of campaign run '{campaign}' with an action.",
                                    hint="Campaign runs are named in the outbound table "
                                    "(run_id) and by 'onetoone decide'.")
            if action is not None and action not in decided:
                where = f" on {channel}" if channel else ""
                raise NotFoundError(
                    f"No decision of action '{action}'{where} yet.",
                    hint=f"Actions decided{where}: {', '.join(decided) or 'none'}.")
            names = [action] if action else [None, *decided]
            return [lift(cur, action=name, channel=channel, window_days=days, since=start,
                         until=end, detect=detect, campaign=campaign) for name in names]

    # -- interact -----------------------------------------------------------------------
    @property
    def privacy(self) -> Privacy:
        """Data-subject rights: access, erasure, anonymisation, retention (docs/privacy.md)."""
        from onetoone.privacy.rights import Privacy

        return Privacy(self.root, self.config.workspace, self.config.privacy, self.store)

    @property
    def campaigns(self) -> Campaigns:
        """The campaigns of ``[campaigns.NAME]`` and those created through the API:
        ``preview``, ``run``, ``status`` (docs/campaigns.md)."""
        from onetoone.channels.campaigns import Campaigns
        from onetoone.channels.definitions import Definitions

        if self.running_service:  # what it logged so far is in the tables
            self.decisions.writer.sync()
        return Campaigns(lambda: self.decisions, self.config.campaigns, self.config.channels,
                         self.root, self.store, self.config.api.public_url,
                         self.config.workspace.timezone, Definitions.of(self))

    def trigger_runner(self) -> Triggers:
        """What runs the campaigns of ``[triggers.NAME]`` in the server (docs/campaigns.md)."""
        from onetoone.channels.triggers import Triggers

        return Triggers(self, self.config.triggers)

    def audit(self, actor: str, action: str, customer_id: str | None = None,
              **details: Any) -> None:
        """One entry of the audit log (``audit_log``, docs/privacy.md): through the service's
        writer while it runs (committed with the next group), else at once."""
        from onetoone.privacy.audit import audit_row, record

        if self.running_service:
            row = audit_row(actor, action, customer_id, details)
            self.decisions.writer.submit(lambda txn: txn.insert("audit_log", [row]),
                                         deferred=True)
        else:
            record(self.store, actor, action, customer_id, details)

    @property
    def keys(self) -> ApiKeys:
        """The API keys of this base: ``create``, ``revoke``, ``list``, ``principal``."""
        if self._keys is None:
            from onetoone.interact.keys import ApiKeys

            self._keys = ApiKeys(self.store, self.config.api)
        return self._keys

    @property
    def decisions(self) -> DecisionService:
        """The decision service of this base (``decide``, ``respond``, ``set_consent``,
        ``ingest_events``, ``customer_view``, ``campaign``): started at first use, with the
        catalog saved and the propensities loaded; closed with the workspace."""
        if self._decisions is None:
            from onetoone.interact.service import DecisionService, ServiceSettings

            self._decisions = DecisionService(
                self.store, ServiceSettings.of(self.config), self.keys,
                outbound=self.root / "outbound",
                preload=self.config.api.preload_profiles and self.serving)
        return self._decisions

    @property
    def running_service(self) -> bool:
        """Whether the decision service of this workspace has been started."""
        return self._decisions is not None

    def path_inside(self, text: str, *, reading: bool = False) -> Path:
        """A path given by a caller of the service (relative to the workspace folder, or
        absolute), checked to lie inside the folder: the server reads and writes nowhere
        else."""
        if "\x00" in text or not text.strip():
            raise InvalidInputError("This is not a file path.")
        path = (self.root / text).resolve()
        if not path.is_relative_to(self.root):
            verb = "reads" if reading else "writes"
            raise InvalidInputError(
                f"The server {verb} inside its workspace folder only.",
                hint=("Copy the file into the workspace (e.g. exports/)" if reading else
                      "Give a path inside the workspace") + ", or stop the server and run "
                "the command alone.")
        return path

    # -- report -------------------------------------------------------------------------
    def report(self, output: Path | str | None = None) -> Path:
        """Write the HTML report (default ``report/index.html`` in the workspace, PNG plots next
        to it); returns its path.

        The value section describes the as-of date scored last in ``customer_scores`` (or the
        last transaction day when nothing was scored yet), recomputed with the same code as
        ``onetoone score``; with the campaigns that ran and their lift."""
        from onetoone.report import write_workspace_report

        return write_workspace_report(self, output)


def _timestamp(value: Any, name: str) -> Any:
    """A date or time given as text or as a date, as a naive timestamp (None stays None)."""
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a date.",
                          hint="Give a date such as 2026-11-01.") from None
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).to_pydatetime()
