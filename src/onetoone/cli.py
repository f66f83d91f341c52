"""The ``onetoone`` command line: a thin adapter over :class:`onetoone.Workspace`.

Errors are one sentence and what to do, exit code 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from onetoone.errors import OneToOneError
from onetoone.ingest import SourceResult
from onetoone.privacy.audit import cli_actor, sql_details
from onetoone.workspace import Workspace

app = typer.Typer(
    name="onetoone",
    help="One-to-one marketing: identify, differentiate, interact with and customize for "
    "every customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables to 80 columns
    console = Console(width=140)
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}

WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace folder.", show_default=True)
]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug
    # what onetoone writes (the database, outbound lists, reports, exports, the server's
    # token) holds personal data: readable by its owner only
    os.umask(0o077)


@contextmanager
def _friendly() -> Iterator[None]:
    try:
        yield
    except OneToOneError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]Error:[/] {escape(exc.user_message())}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Interrupted; nothing half-written was kept.")
        raise typer.Exit(130) from None


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str, int], None]]:
    bar = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=None),
        TextColumn("{task.completed:,.0f} rows"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def advance(name: str, rows: int) -> None:
        if name not in tasks:
            tasks[name] = bar.add_task(f"{label} {name}", total=None)
        bar.advance(tasks[name], rows)

    with bar:
        yield advance


class _TimeLeft(ProgressColumn):
    """About how long is left: the time so far, scaled by the share of the work still to do."""

    def render(self, task: Task) -> Text:
        elapsed, done = task.elapsed or 0.0, task.completed / (task.total or 1.0)
        if done < 0.02 or elapsed < 2:
            return Text("estimating", style="progress.remaining")
        left = elapsed * (1 - done) / done
        said = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
        return Text(f"about {said} left", style="progress.remaining")


@contextmanager
def _parts(label: str) -> Iterator[Callable[[str, float], None]]:
    """A bar for a step made of parts: ``tell(part, fraction of the step done)``."""
    bar = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
        TaskProgressColumn(), TimeElapsedColumn(), _TimeLeft(),
        console=err, transient=True, disable=not err.is_terminal,
    )
    task = bar.add_task(label, total=1.0)

    def tell(part: str, done: float) -> None:
        bar.update(task, description=f"{label}: {escape(part)}", completed=done)

    with bar:
        yield tell


def _ingest_table(results: list[SourceResult]) -> Table:
    table = Table(title="Ingestion", title_justify="left")
    for col in ("source", "entity", "files", "read", "loaded", "new", "changed",
                "quarantined", "invalid values"):
        table.add_column(col, justify="right" if col not in ("source", "entity") else "left")
    for res in results:
        unchanged = sum(1 for f in res.files if f.status == "unchanged")
        files = f"{len(res.files)}" + (f" ({unchanged} unchanged)" if unchanged else "")
        quarantined = res.total("rows_quarantined")
        table.add_row(
            res.source, res.entity, files, f"{res.total('rows_read'):,}",
            f"{res.total('rows_loaded'):,}", f"{res.total('rows_new'):,}",
            f"{res.total('rows_changed'):,}",
            f"[yellow]{quarantined:,}[/]" if quarantined else "0",
            f"{res.total('values_invalid'):,}",
        )
    return table


def _summary_table(root: Path | str, counts: dict[str, int]) -> Table:
    table = Table(title=f"Workspace {root}", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    return table


def _job(server: Any, step: str, args: dict[str, Any], label: str) -> dict[str, Any]:
    """Run ``step`` as a job of the server, with the same progress bar as alone; its result,
    or the same one-sentence error. Ctrl-C cancels the job."""
    job = server.call("POST", "/v1/jobs", {"step": step, "args": args})
    if job["status"] == "queued" and job["log"]:
        err.print(f"The server runs another job first; this {step} is queued ({job['job_id']}).",
                  markup=False, highlight=False)
    try:
        with _parts(label) as tell:
            while job["status"] in ("queued", "running"):
                time.sleep(0.25)
                job = server.call("GET", f"/v1/jobs/{job['job_id']}")
                tell(job["part"] or job["status"], job["done"])
    except KeyboardInterrupt:
        server.call("DELETE", f"/v1/jobs/{job['job_id']}")
        raise
    if job["status"] == "succeeded":
        return dict(job["result"])
    raise OneToOneError(job["error"] or f"The job {job['job_id']} ended: {job['status']}.")


def _served(workspace: Path) -> Any:
    """The server that owns the workspace, if one runs (the command then goes through it);
    says so when a stale address file was removed."""
    from onetoone.api.local import find_server

    server, said = find_server(Path(workspace).resolve())
    if said:
        err.print(said, markup=False, highlight=False)
    return server


T = TypeVar("T")


def _either(workspace: Path, served: Callable[[Any], T], alone: Callable[[Workspace], T], *,
            read_only: bool = False) -> T:
    """``served(server)`` when a server owns the workspace, else ``alone(ws)`` on the workspace
    opened here."""
    server = _served(workspace)
    if server is not None:
        return served(server)
    with Workspace(workspace, read_only=read_only) as ws:
        return alone(ws)


def _parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        if "=" not in item:
            raise OneToOneError(
                f"{option} '{item}' is not of the form canonical=column.",
                hint=f"For example: {option} email=mail.",
            )
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    return pairs


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Workspace name.")] = None,
) -> None:
    """Create a workspace: onetoone.toml (to edit) and onetoone.duckdb (the data)."""
    with _friendly():
        ws = Workspace.init(directory, name=name)
        ws.close()
        console.print(f"Workspace ready in [bold]{ws.root}[/]. Declare your sources in "
                      f"{ws.root / 'onetoone.toml'}, then run 'onetoone ingest'.")


@app.command()
def ingest(
    source: Annotated[str | None, typer.Argument(help="Source name or file path; "
                                                 "default: every declared source.")] = None,
    workspace: WorkspaceOpt = Path("."),
    entity: Annotated[str | None, typer.Option(help="Entity of an ad-hoc file.")] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="canonical=column, for an ad-hoc file (repeat).")] = None,
    identifier: Annotated[list[str] | None, typer.Option(
        "--identifier", help="type=column identifier of an ad-hoc file (repeat).")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Delimiter of an ad-hoc CSV.")] = None,
    encoding: Annotated[str | None, typer.Option(help="Encoding of an ad-hoc file.")] = None,
    date_format: Annotated[str | None, typer.Option(help="Date format (strptime).")] = None,
) -> None:
    """Load the declared sources (or one, or an ad-hoc file) into the workspace."""
    with _friendly():
        started = time.perf_counter()
        options: dict[str, object] = {
            k: v for k, v in (("delimiter", delimiter), ("encoding", encoding),
                              ("date_format", date_format)) if v is not None
        }
        server = _served(workspace)
        if server is not None:
            args: dict[str, Any] = {"source": source} if source else {}
            if entity and source:  # an ad-hoc file: the server reads it in its workspace
                args = {"path": str(Path(source).resolve()), "entity": entity,
                        "columns": _parse_pairs(map_, "--map"),
                        "identifiers": _parse_pairs(identifier, "--identifier"),
                        "options": options}
            done = _job(server, "ingest", args, "loading")
            results = [SourceResult.from_summary(r) for r in done["sources"]]
            attributed = int(done.get("conversions_attributed") or 0)
        else:
            with Workspace(workspace) as ws, _progress("loading") as progress:
                results = ws.ingest(
                    source, entity=entity, columns=_parse_pairs(map_, "--map"),
                    identifiers=_parse_pairs(identifier, "--identifier"), options=options,
                    progress=progress,
                    path=Path(source) if entity and source else None,
                )
                from onetoone.jobs import attribute_conversions

                attributed = attribute_conversions(ws)
        console.print(_ingest_table(results))
        quarantined = sum(r.total("rows_quarantined") for r in results)
        console.print(
            f"Done in {time.perf_counter() - started:.1f} s."
            + (f" {quarantined:,} rows quarantined: see the 'quarantine' table." if quarantined
               else "")
            + (f" {attributed:,} purchase(s) converted campaign messages." if attributed
               else "")
        )


@app.command()
def demo(
    workspace: WorkspaceOpt = Path("onetoone-demo"),
    customers: Annotated[int, typer.Option(help="Number of people in the company.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    generate_only: Annotated[bool, typer.Option(
        "--generate-only", help="Write the exports and onetoone.toml, run no step (then run "
        "'onetoone ingest', 'identify', 'score' yourself).")] = False,
) -> None:
    """Generate the demo company (a French retailer's silos), then run every step on it."""
    from onetoone.demo import generate_demo

    with _friendly():
        if customers < 10:
            raise OneToOneError("--customers must be at least 10.")
        started = time.perf_counter()
        root = workspace.resolve()
        if (root / "onetoone.duckdb").exists():
            raise OneToOneError(
                f"{root} already holds a workspace.",
                hint="Choose another --workspace, or delete that folder to start again.",
            )
        with _progress("generating") as progress:
            company = generate_demo(root, customers=customers, seed=seed)
            progress("demo company", customers)
        with Workspace.init(root, config_text=company.config_text()) as ws:
            if generate_only:
                console.print(f"Demo company of {customers:,} people written to {root} "
                              f"({time.perf_counter() - started:.1f} s); run 'onetoone ingest "
                              f"--workspace {root}' next.", markup=False, highlight=False)
                return
            with _progress("loading") as progress:
                results = ws.ingest(progress=progress)
            console.print(_ingest_table(results))
            _identify_summary(ws.identify())
            if ws.summary()["customers"]:  # identified: score value
                with _parts("scoring") as tell:
                    result = ws.score(progress=tell)
                _value_summary(result.summary())
                _demo_campaign(ws, company)
            console.print(_summary_table(ws.root, ws.summary()))
            if ws.summary()["customers"]:
                from onetoone.report import write_workspace_report

                with _parts("reporting") as tell:
                    tell("report", 0.0)
                    report_path = write_workspace_report(ws)
                console.print(f"Report written to {report_path}.")
        console.print(
            f"Demo company of {customers:,} people ready in {root} "
            f"({time.perf_counter() - started:.1f} s). Ground truth is in {root / 'truth'}."
        )


def _demo_campaign(ws: Workspace, company: Any) -> None:
    """The demo's win-back campaign into the outbox, and its customers' simulated answers."""
    from onetoone.demo.answers import WINBACK, campaign_rows, run_demo_campaign
    from onetoone.report import run_lift

    with _parts(f"campaign {WINBACK}") as tell:
        tell("sending", 0.0)
        _, answers = run_demo_campaign(ws, company.directory / "truth", company.seed,
                                       company.end)
        status = ws.campaigns.status(WINBACK, lift=lambda run: run_lift(ws, run))
    _counts_table(f"Campaign {WINBACK} (simulated answers)",
                  campaign_rows(status, answers))
    for found in status.get("lift", []):
        console.print(f"{found['run']}: {found.get('text') or found.get('error')}",
                      markup=False, highlight=False)


@app.command()
def status(workspace: WorkspaceOpt = Path(".")) -> None:
    """Rows in every table of the workspace and the [schedule]: next runs, last results
    (through its server when one runs)."""
    from onetoone.schedule import schedule_status

    with _friendly():
        server = _served(workspace)
        if server is not None:
            data = server.call("GET", "/v1/status")
            console.print(_summary_table(data["workspace"], data["tables"]))
            _schedule(data.get("schedule"))
            return
        with Workspace(workspace, read_only=True) as ws:
            console.print(_summary_table(ws.root, ws.summary()))
            _schedule(schedule_status(ws))


def _schedule(schedule: dict[str, Any] | None) -> None:
    """The [schedule] of ``onetoone status``: each step, when it runs, its next run and its
    last result, times in the workspace's time zone."""
    if not schedule or not schedule["steps"]:
        return
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(schedule["timezone"])

    def local(text: str | None) -> str:
        if text is None:
            return ""
        return f"{datetime.fromisoformat(text).astimezone(tz):%Y-%m-%d %H:%M %Z}"

    table = Table(title=f"Schedule ({schedule['timezone']})", title_justify="left")
    for col in ("step", "runs", "next run", "last result"):
        table.add_column(col)
    for row in schedule["steps"]:
        after = row["after"]
        upcoming = local(row["next_run"]) if after is None else f"when {after} succeeds"
        last = row["last"]
        result = "never run" if last is None else f"{last['status']} {local(last['finished_at'])}"
        if row["active"]:
            result += f" ({row['active']} now)"
        table.add_row(row["step"], row["when"], upcoming, result)
    console.print(table)
    if schedule["served"]:
        console.print("The server of this workspace runs this schedule.")
    else:
        console.print("The schedule runs only while 'onetoone serve' runs; no server runs now.")


def _value_summary(summary: dict[str, Any]) -> None:
    """The value pyramid and Pareto share of a scoring run (``ValueResult.summary()``)."""
    table = Table(title=f"Value as of {summary['as_of']} ({summary['model_name']} model)",
                  title_justify="left")
    for col in ("tier", "customers", "CLV", "share of value"):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for row in summary["pyramid"]:
        table.add_row(row["tier"], f"{row['customers']:,}", f"{row['clv']:,.0f}",
                      f"{row['value_share']:.0%}")
    console.print(table)
    pareto = summary["pareto"]
    console.print(f"Top 1 % of customers hold {pareto['top_1pct']:.0%} of the value, top 20 % "
                  f"hold {pareto['top_20pct']:.0%}.")
    for note in summary["notes"]:
        # the mass-defection alert of the monitor stands out from the other notes
        style = "bold red" if note.startswith("Mass-defection alert") else None
        console.print(note, markup=False, highlight=False, style=style)


@app.command()
def score(
    workspace: WorkspaceOpt = Path("."),
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Date the scores describe (default: the last transaction day).")] = None,
) -> None:
    """Score every customer's value: P(alive), expected purchases, CLV, value tier."""
    with _friendly():
        started = time.perf_counter()
        server = _served(workspace)
        if server is not None:
            summary = _job(server, "score", {"as_of": as_of} if as_of else {}, "scoring")
        else:
            with Workspace(workspace) as ws, _parts("scoring") as tell:
                summary = ws.score(as_of=as_of, progress=tell).summary()
        _value_summary(summary)
        console.print(f"{summary['customers']:,} customers scored into customer_scores in "
                      f"{time.perf_counter() - started:.1f} s.")


@app.command()
def report(
    workspace: WorkspaceOpt = Path("."),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="HTML file (default: report/index.html in the workspace).")] = None,
) -> None:
    """Write the HTML report (value pyramid, Pareto, model validation, defection monitor),
    plots as PNG too."""
    with _friendly():
        server = _served(workspace)
        if server is not None:
            # the server judges the path (inside its workspace only: Workspace.path_inside)
            path = server.call("POST", "/v1/report", {
                "output": None if output is None else str(Path(output).resolve())})["path"]
        else:
            with Workspace(workspace) as ws:
                path = ws.report(output)
                ws.audit(cli_actor(), "report.write", None)
        console.print(f"Report written to {path}.")


identify_app = typer.Typer(help="Link records into customers; merge, unmerge, review pairs.",
                           invoke_without_command=True, no_args_is_help=False)
app.add_typer(identify_app, name="identify")


def _identify_summary(result: Any) -> None:
    console.print(
        f"{result.records:,} records -> {result.customers:,} customers ({result.mode} run"
        + (f" over {result.records_rebuilt:,} records" if result.mode == "incremental" else "")
        + f", {result.seconds:.1f} s): {result.customers_new:,} new, {result.merges:,} merged, "
        f"{result.splits:,} split, {result.probabilistic_links:,} probabilistic links, "
        f"{result.pending_reviews:,} pairs to review."
    )
    for note in result.notes:
        console.print(note, markup=False)


@identify_app.callback()
def identify(
    ctx: typer.Context,
    workspace: WorkspaceOpt = Path("."),
    full: Annotated[bool, typer.Option("--full", help="Recompute every customer.")] = False,
) -> None:
    """Link every customer record into customers (only what changed, unless --full)."""
    if ctx.invoked_subcommand is not None:
        return
    with _friendly():
        server = _served(workspace)
        if server is not None:
            from onetoone.identify import IdentifyResult

            result = IdentifyResult(**_job(server, "identify", {"full": full}, "identifying"))
        else:
            with Workspace(workspace) as ws, _parts("identifying") as tell:
                result = ws.identify(full=full, progress=tell)
    _identify_summary(result)


@identify_app.command("merge")
def identify_merge(
    customer_a: Annotated[str, typer.Argument(help="Customer id.")],
    customer_b: Annotated[str, typer.Argument(help="Customer id.")],
    workspace: WorkspaceOpt = Path("."),
    reason: Annotated[str, typer.Option(help="Why (kept in identity_events).")] = "",
) -> None:
    """Make two customers one (the older id survives), for good."""
    _identify_decision(workspace, "merge", {
        "customer_a": customer_a, "customer_b": customer_b, "reason": reason})


def _identify_decision(workspace: Path, step: str, args: dict[str, Any]) -> None:
    """A person's identity decision (a step of ``onetoone.jobs.IDENTITY_STEPS``): a job of
    the server that owns the workspace, if one runs, else run here; its summary either way."""
    from onetoone.identify import IdentifyResult
    from onetoone.jobs import IDENTITY_STEPS
    from onetoone.progress import silent

    with _friendly():
        result = _either(workspace, lambda server: _job(server, step, args, "identifying"),
                         lambda ws: IDENTITY_STEPS[step][0](ws, args, silent))
    _identify_summary(IdentifyResult(**result))


@identify_app.command("unmerge")
def identify_unmerge(
    record_key: Annotated[str, typer.Argument(help="Record key, e.g. crm:1234.")],
    workspace: WorkspaceOpt = Path("."),
    reason: Annotated[str, typer.Option(help="Why (kept in identity_events).")] = "",
) -> None:
    """Take one record out of its customer, for good."""
    _identify_decision(workspace, "unmerge", {"record_key": record_key, "reason": reason})


@identify_app.command("review")
def identify_review(
    workspace: WorkspaceOpt = Path("."),
    accept: Annotated[list[str] | None, typer.Option(
        help="Accept the pair LEFT,RIGHT (repeat).")] = None,
    reject: Annotated[list[str] | None, typer.Option(
        help="Reject the pair LEFT,RIGHT (repeat).")] = None,
) -> None:
    """List the pairs waiting for a person, or accept / reject some."""
    if accept or reject:
        _identify_decision(workspace, "review", {"accept": accept or [], "reject": reject or []})
        return
    with _friendly():
        pairs = _either(workspace, lambda server: [
            (p["left"], p["right"], p["probability"], p["evidence"])
            for p in server.call("GET", "/v1/customers/identity/reviews")["pairs"]],
            lambda ws: ws.identity.pending_reviews(), read_only=True)
    table = Table(title="Pairs to review", title_justify="left")
    for col in ("left", "right", "probability", "evidence"):
        table.add_column(col)
    for left, right, prob, evidence in pairs:
        table.add_row(left, right, f"{prob:.3f}", evidence)
    console.print(table)


@app.command()
def customer(
    customer_id: Annotated[str, typer.Argument(help="Customer id.")],
    workspace: WorkspaceOpt = Path("."),
    why: Annotated[bool, typer.Option(
        "--why", help="Why these records are one, and why related ones are not.")] = False,
) -> None:
    """One customer: golden record, source records and, with --why, the evidence (through
    the workspace's server when one runs)."""
    from urllib.parse import quote

    with _friendly():
        server = _served(workspace)
        if server is not None:
            view = server.call("GET", f"/v1/customers/{quote(customer_id, safe='')}/identity"
                               + ("?why=true" if why else ""))
        else:
            with Workspace(workspace) as ws:
                view = ws.customer(customer_id, why=why)
                ws.audit(cli_actor(), "customer.read", customer_id, view="identity")
        golden = Table(title=f"Customer {customer_id}", title_justify="left", show_header=False)
        for key, value in view["customer"].items():
            if value is not None and key not in ("field_sources", "customer_id"):
                golden.add_row(key, str(value))
        console.print(golden)
        records = Table(title="Source records", title_justify="left")
        columns = ["record_key", "source", "first_name", "last_name", "email", "phone",
                   "method", "match_probability"]
        for col in columns:
            records.add_column(col)
        for rec in view["records"]:
            records.add_row(*("" if rec[c] is None else str(rec[c]) for c in columns))
        console.print(records)
        for line in view.get("evidence", []):
            console.print(f"- {line}", markup=False, highlight=False)
        if view.get("refused"):
            console.print("Not part of this customer, and why:", markup=False, highlight=False)
            for line in view["refused"]:
                console.print(f"- {line}", markup=False, highlight=False)


@app.command()
def serve(
    workspace: WorkspaceOpt = Path("."),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Run the REST API (decisions, events, customers; OpenAPI at /docs) owning the workspace."""
    import logging
    import signal
    import threading
    from types import FrameType

    with _friendly():
        try:
            import uvicorn

            from onetoone.api import create_app
            from onetoone.api.local import remove_server_file, write_server_file
        except ImportError:
            raise OneToOneError("The REST API needs the 'service' extra.",
                                hint="pip install 'onetoone[service]'.") from None
        ws = Workspace(workspace)
        application = create_app(ws)
        service, keys = ws.decisions, len(ws.keys.ring)
        level = ws.config.api.log_level.upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        console.print(f"Serving {ws.root} on http://{host}:{port} (OpenAPI at /docs): "
                      f"{len(service.catalog)} actions, {keys} API keys."
                      + ("" if keys else
                         " Create a key with 'onetoone apikey create NAME --scopes admin'."),
                      markup=False, highlight=False)
        interrupted = application.state.jobs.interrupted
        if interrupted:
            err.print(f"{len(interrupted)} job(s) were interrupted by the last stop of the "
                      f"server: {', '.join(interrupted)} (see the jobs table).",
                      markup=False, highlight=False)
        # the CLI of the same user goes through this server while it runs
        local = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
        write_server_file(ws.root, f"http://{local}:{port}",
                          ws.keys.session_key("local-cli", ["admin"]))
        jobs = application.state.jobs

        class Server(uvicorn.Server):
            """uvicorn's graceful stop (no new connection, the requests in flight answered,
            then the application's shutdown), with the running job cancelled at the first
            SIGTERM or Ctrl-C rather than after the requests (see docs/service.md)."""

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                if not self.should_exit:  # not in the handler: stop() takes the queue's lock
                    threading.Thread(target=jobs.stop, name="onetoone-stop",
                                     daemon=True).start()
                super().handle_exit(sig, frame)

        # uvicorn stops gracefully on SIGTERM, then raises it again: as an exit (143), so that
        # the address file is removed (the default action would end the process at once)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        server = Server(uvicorn.Config(
            application, host=host, port=port, access_log=False,
            log_level=ws.config.api.log_level, server_header=False, timeout_keep_alive=60,
            timeout_graceful_shutdown=30))  # seconds for the requests in flight
        try:
            server.run()
        except KeyboardInterrupt:  # Ctrl-C, raised again by uvicorn once stopped: exit 0
            pass
        finally:
            remove_server_file(ws.root)
            _compact(ws.root)  # the erasures made while it ran leave the file
        if not server.started:  # the address was in use, say
            raise typer.Exit(3)


@app.command()
def decide(
    channel: Annotated[str, typer.Option("--channel", "-c", help="Channel of the campaign.")],
    workspace: WorkspaceOpt = Path("."),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="CSV file (default: outbound/<run>.csv in the workspace).")] = None,
) -> None:
    """Decide for every customer on a channel: the outbound list (CSV + table 'outbound'),
    through the workspace's server when one runs."""
    from onetoone.interact.service import CampaignResult
    from onetoone.jobs import decide_list

    args = {"channel": channel, "output": None if output is None else str(output.resolve())}
    with _friendly():
        result = CampaignResult.from_summary(_either(
            workspace, lambda server: _job(server, "decide", args, "deciding"),
            lambda ws: decide_list(ws, channel, output, cli_actor())))
        table = Table(title=f"Campaign {result.run_id} on {channel}", title_justify="left")
        table.add_column("outcome")
        table.add_column("customers", justify="right")
        table.add_row("contacted", f"{result.contacted:,}")
        table.add_row("control group (withheld)", f"{result.control:,}")
        for reason, count in result.reasons.most_common():
            table.add_row(reason, f"{count:,}")
        console.print(table)
        console.print(f"{result.contacted:,} of {result.customers:,} customers in the outbound "
                      f"list {result.output} ({result.seconds:.1f} s).",
                      markup=False, highlight=False)


def _share(value: float, signed: bool = False) -> str:
    if value != value:  # NaN: a group is empty
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _interval(low: float, high: float, signed: bool = True, money: bool = False) -> str:
    if low != low or high != high:
        return "-"
    if money:
        return f"[{low:+,.2f}, {high:+,.2f}]"
    return f"[{_share(low, signed)}, {_share(high, signed)}]"


@app.command()
def lift(
    workspace: WorkspaceOpt = Path("."),
    action: Annotated[str | None, typer.Option(help="One action (default: all, then each).")
                      ] = None,
    channel: Annotated[str | None, typer.Option(help="Decisions on this channel only.")] = None,
    campaign: Annotated[str | None, typer.Option(
        help="Decisions of one campaign run only (its run id, e.g. run-20261207T101500-ab12cd).")
                        ] = None,
    window_days: Annotated[int | None, typer.Option(
        "--window-days", min=1, help="Days after the first decision in which a purchase counts "
        "(default: [control_groups] window_days).")] = None,
    since: Annotated[str | None, typer.Option(help="Decisions from this date on.")] = None,
    detect: Annotated[float | None, typer.Option(
        help="Absolute lift to size the test for, e.g. 0.01 (default: the one observed).")
                      ] = None,
) -> None:
    """What the contacts changed: treated against control, with confidence intervals."""
    with _friendly(), Workspace(workspace, read_only=True) as ws:
        results = ws.lift(action=action, channel=channel, campaign=campaign,
                          window_days=window_days, since=since, detect=detect)
        if not any(r.n_treated or r.n_control for r in results):
            console.print("No decision yet: run 'onetoone decide' or serve decisions first; "
                          "the lift is measured against the control groups they keep.",
                          markup=False)
            return
        confidence = results[0].confidence if results else 0.95
        table = Table(title=f"Lift at {confidence:.0%} confidence"
                      + (f" on {channel}" if channel else "")
                      + (f" in {campaign}" if campaign else ""), title_justify="left",
                      box=box.SIMPLE_HEAD)
        for col in ("action", "treated", "control", "conversion", "lift (relative)",
                    "value/customer", "incremental", "status"):
            table.add_column(col, justify="left" if col in ("action", "status") else "right",
                             no_wrap=col != "status", min_width=11 if col == "status" else None)
        for r in results:
            table.add_row(
                r.action or "all marketing", f"{r.n_treated:,}", f"{r.n_control:,}",
                f"{_share(r.conversion_treated)} vs {_share(r.conversion_control)}",
                "-" if r.difference != r.difference else
                f"{_share(r.difference, True)} {_interval(r.difference_low, r.difference_high)}"
                f" ({_share(r.relative, True)})",
                "-" if r.value_difference != r.value_difference else
                f"{r.value_difference:+,.2f} "
                f"{_interval(r.value_difference_low, r.value_difference_high, money=True)}",
                "-" if r.incremental_value != r.incremental_value else
                f"{r.incremental_value:+,.0f}",
                escape(r.status),
            )
        console.print(table)
        for r in results:
            if r.status == "not enough data yet" and r.sample_size_needed is not None:
                console.print(f"{r.action or 'All marketing'}: {r.sample_size_needed:,} "
                              f"customers per group are needed to detect a lift of "
                              f"{r.detect:+.1%} (now {r.n_treated:,} treated, {r.n_control:,} "
                              "in control).", markup=False, highlight=False)


@app.command()
def abtest(
    name: Annotated[str, typer.Argument(help="The [ab_tests.NAME] to read.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Results of an A/B/n test: each arm against the first, valid however often you look."""
    with _friendly(), Workspace(workspace, read_only=True) as ws:
        result = ws.ab_test(name)
        table = Table(title=f"A/B test {name}", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("arm", "customers", "conversion", "vs reference", "verdict"):
            table.add_column(col, justify="left" if col in ("arm", "verdict") else "right",
                             no_wrap=col != "verdict")
        for arm in result.arms:
            table.add_row(
                arm.action, f"{arm.customers:,}",
                f"{_share(arm.rate)} {_interval(arm.rate_low, arm.rate_high, False)}",
                "" if arm.verdict == "reference" else
                f"{_share(arm.difference, True)} "
                f"{_interval(arm.difference_low, arm.difference_high)}",
                arm.verdict)
        console.print(table)
        console.print(f"{result.verdict} (confidence sequences at {1 - result.alpha:.0%}, "
                      "valid at every look).", markup=False, highlight=False)


@app.command()
def uplift(
    action: Annotated[str, typer.Argument(help="The action whose uplift to learn.")],
    workspace: WorkspaceOpt = Path("."),
    method: Annotated[str, typer.Option(
        help="t_learner, class_transformation or x_learner.")] = "t_learner",
    learner: Annotated[str, typer.Option(help="lightgbm or logistic.")] = "lightgbm",
    window_days: Annotated[int | None, typer.Option(
        "--window-days", min=1, help="Days after the decision in which a purchase counts "
        "(default: [control_groups] window_days).")] = None,
) -> None:
    """Learn an action's uplift from its treated and withheld customers and write it for every
    customer (used by decisions when the action has rank_by = "uplift")."""
    with _friendly(), Workspace(workspace) as ws:
        run = ws.uplift(action, method=method, learner=learner, window_days=window_days)
        console.print(str(run), markup=False, highlight=False)


_KPI_FORMAT = {"repeat_rate": "{:.1%}", "retention_12m": "{:.1%}", "defection_rate": "{:.2%}",
               "top_tier_value_share": "{:.1%}", "nps": "{:+.0f}"}


@app.command()
def kpis(
    workspace: WorkspaceOpt = Path("."),
    months: Annotated[int, typer.Option(min=1, help="Months to show, latest last.")] = 12,
) -> None:
    """Key figures month by month: active customers, retention, repeat rate, defection, NPS
    (recomputed into the kpis table)."""
    with _friendly():
        server = _served(workspace)
        if server is not None:
            _job(server, "kpis", {}, "KPIs")
            rows = server.call("GET", f"/v1/kpis?months={months}")["kpis"]
            import pandas as pd

            wide = pd.DataFrame(rows).set_index("month") if rows else pd.DataFrame()
            wide.index = pd.to_datetime(wide.index)
        else:
            with Workspace(workspace) as ws:
                ws.kpis()
                wide = ws.key_figures(months)
        if wide.empty:
            console.print("No KPI yet: there is no purchase of an identified customer. Run "
                          "'onetoone ingest' and 'onetoone identify' first.", markup=False)
            return
        table = Table(title="KPIs by month", title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("month")
        for kpi in wide.columns:
            table.add_column(kpi.replace("_", " "), justify="right")
        for month, row in wide.iterrows():
            table.add_row(f"{month:%Y-%m}", *(
                "-" if row[k] != row[k] else
                _KPI_FORMAT.get(k, "{:,.0f}").format(row[k]) for k in wide.columns))
        console.print(table)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(
        help="One statement that reads: SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, EXPLAIN "
        "(tables: docs/data-model.md).")],
    workspace: WorkspaceOpt = Path("."),
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of objects on stdout.")
                       ] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, help="At most this many rows (default: 1,000 in a table; every row as CSV or "
        "JSON, up to 100,000 through a running server).")] = None,
) -> None:
    """Query the workspace's tables, read-only (through its server when one runs)."""
    from onetoone.api.local import MAX_SQL_ROWS

    with _friendly():
        if as_csv and as_json:
            raise OneToOneError("Choose --csv or --json, not both.")
        wanted = limit if limit is not None else (None if as_csv or as_json else 1_000)
        server = _served(workspace)
        if server is not None:
            data = server.call("POST", "/v1/sql", {"query": query,
                                                   "limit": min(wanted or MAX_SQL_ROWS,
                                                                MAX_SQL_ROWS)})
            columns, rows, more = data["columns"], data["rows"], data["truncated"]
        else:
            with Workspace(workspace) as ws:
                table, more = ws.sql(query, limit=wanted)
                ws.audit(cli_actor(), "sql.query", None, **sql_details(query, table, more))
            columns = table.column_names
            rows = [list(row.values()) for row in table.to_pylist()]
        if as_csv:
            _write_csv(columns, rows)
        elif as_json:
            sys.stdout.write(json.dumps([dict(zip(columns, row, strict=True)) for row in rows],
                                        ensure_ascii=False, default=str) + "\n")
        else:
            out = Table(box=box.SIMPLE_HEAD)
            for column in columns:
                out.add_column(column, overflow="fold")
            for row in rows:
                out.add_row(*("" if v is None else str(v) for v in row))
            console.print(out)
        if more:
            err.print(f"Only the first {len(rows):,} rows are shown; --limit N shows more.",
                      markup=False, highlight=False)


def _write_csv(columns: list[str], rows: list[list[Any]]) -> None:
    """CSV on stdout; a text cell a spreadsheet would read as a formula is quoted with '."""
    import csv

    from onetoone.customize.templates import spreadsheet_cell

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([spreadsheet_cell(c) for c in columns])
    writer.writerows([spreadsheet_cell(v) for v in row] for row in rows)


apikey_app = typer.Typer(help="API keys of the REST API (stored hashed).", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="Who the key is for.")],
    scopes: Annotated[str, typer.Option(
        help="Comma-separated: events:write, consents:write, customers:read, decisions, jobs, "
        "admin.")
                      ] = "decisions",
    expires_in: Annotated[str | None, typer.Option(
        "--expires-in", help="When it expires: 90d, 12h, or a date (2027-01-31, UTC). "
        "Default: never.")] = None,
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Create a key; it is printed once, on the last line."""
    from onetoone.interact.keys import parse_expiry

    with _friendly():
        expires_at = parse_expiry(expires_in) if expires_in else None
        server = _served(workspace)
        if server is not None:
            key = server.call("POST", "/v1/apikeys", {
                "name": name, "scopes": scopes.split(","),
                "expires_at": expires_at.isoformat() if expires_at else None})["key"]
        else:
            with Workspace(workspace) as ws:
                key = ws.keys.create(name, scopes.split(","), expires_at)
        until = f", valid until {_minute(expires_at)} UTC" if expires_at else ""
        console.print(f"API key '{name}' created with scopes {scopes}{until}. Keep it secret; "
                      "it is shown only once:", markup=False, highlight=False)
        print(key)


@apikey_app.command("rotate")
def apikey_rotate(
    name: Annotated[str, typer.Argument(help="Name of the key.")],
    grace: Annotated[str, typer.Option(
        help="How long the old key stays valid: 7d, 12h, 0h.")] = "7d",
    expires_in: Annotated[str | None, typer.Option(
        "--expires-in", help="When the new key expires: 90d, 12h, or a date (UTC). Default: "
        "after the lifetime of the old one.")] = None,
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """A new key for the same name and scopes, printed once, on the last line; the old one
    stays valid for the grace period, then expires."""
    from urllib.parse import quote

    from onetoone.interact.keys import parse_duration, parse_expiry

    with _friendly():
        period = parse_duration(grace)
        expires_at = parse_expiry(expires_in) if expires_in else None
        server = _served(workspace)
        if server is not None:
            done = server.call("POST", f"/v1/apikeys/{quote(name, safe='')}/rotate", {
                "grace_days": period.total_seconds() / 86400,
                "expires_at": expires_at.isoformat() if expires_at else None})
            key, old_end, new_end = done["key"], done["previous_expires_at"], done["expires_at"]
        else:
            with Workspace(workspace) as ws:
                rotated = ws.keys.rotate(name, period, expires_at)
            key, old_end, new_end = rotated.key, rotated.previous_expires_at, rotated.expires_at
        until = f" (valid until {_minute(new_end)} UTC)" if new_end else ""
        console.print(f"API key '{name}' rotated: the old key stays valid until "
                      f"{_minute(old_end)} UTC. The new key{until}, shown only once:",
                      markup=False, highlight=False)
        print(key)


@apikey_app.command("revoke")
def apikey_revoke(
    name: Annotated[str, typer.Argument(help="Name of the key.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Revoke every key of that name (both keys of a rotated pair)."""
    from urllib.parse import quote

    with _friendly():
        server = _served(workspace)
        if server is not None:
            count = server.call("DELETE", f"/v1/apikeys/{quote(name, safe='')}")["revoked"]
        else:
            with Workspace(workspace) as ws:
                count = ws.keys.revoke(name)
        console.print(f"{count} key(s) named '{name}' revoked.", markup=False, highlight=False)


@apikey_app.command("list")
def apikey_list(workspace: WorkspaceOpt = Path(".")) -> None:
    """The stored keys (names, scopes, dates; never the keys themselves)."""
    with _friendly():
        keys = _either(workspace, lambda server: server.call("GET", "/v1/apikeys"),
                       lambda ws: ws.keys.list(), read_only=True)
        table = Table(title="API keys (times in UTC)", title_justify="left")
        for col in ("name", "scopes", "created", "expires", "revoked"):
            table.add_column(col)
        for key in keys:
            table.add_row(key["name"], ", ".join(key["scopes"]), _minute(key["created_at"]),
                          _minute(key.get("expires_at")), _minute(key["revoked_at"]))
        console.print(table)


def _minute(when: Any) -> str:
    """A time to the minute, stored (datetime) or sent by the server (ISO text)."""
    return "" if when is None else str(when).replace("T", " ")[:16]


privacy_app = typer.Typer(help="A person's rights: access (export), erasure, anonymisation; "
                          "retention (docs/privacy.md).", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")

_PERSON_OPTS = {
    "customer": typer.Option("--customer", help="Customer id."),
    "email": typer.Option("--email", help="E-mail."),
    "phone": typer.Option("--phone", help="Phone number."),
    "identifier": typer.Option("--identifier", help="TYPE:VALUE, e.g. loyalty_card:123456."),
}
Customer = Annotated[str | None, _PERSON_OPTS["customer"]]
Email = Annotated[str | None, _PERSON_OPTS["email"]]
Phone = Annotated[str | None, _PERSON_OPTS["phone"]]
Identifier = Annotated[str | None, _PERSON_OPTS["identifier"]]


def _compact(root: Path) -> None:
    """Rewrite the database file after erasures (the command line alone, or a server that
    stopped), saying so."""
    from onetoone.privacy.rights import compact_if_pending

    done = compact_if_pending(root)
    if done:
        err.print("The database file was compacted: the erased values are gone from it.",
                  markup=False, highlight=False)
    elif done is False:
        err.print("The database file could not be compacted now (in use): run 'onetoone "
                  "privacy compact' once it is free.", markup=False, highlight=False)


def _served_customer(server: Any, kind: str, value: str) -> str:
    """The customer id of the person named, asked to the server."""
    from urllib.parse import quote

    if kind in ("customer", "customer_id"):
        return value
    found = server.call("GET", "/v1/customers?identifier=" + quote(f"{kind}:{value}", safe=""))
    return str(found["customer_id"])


@privacy_app.command("export")
def privacy_export(
    workspace: WorkspaceOpt = Path("."),
    customer: Customer = None, email: Email = None, phone: Phone = None,
    identifier: Identifier = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="JSON file (readable by you only); default: stdout.")] = None,
) -> None:
    """Everything the workspace holds about one person, as one JSON document (GDPR articles
    15 and 20). Audited."""
    from urllib.parse import quote

    from onetoone.privacy.rights import selector, write_private

    with _friendly():
        kind, value = selector(customer, email, phone, identifier)
        server = _served(workspace)
        if server is not None:
            found = _served_customer(server, kind, value)
            document = server.call("GET", f"/v1/customers/{quote(found, safe='')}/export")
            text = json.dumps(document, indent=2, ensure_ascii=False)
            if output is not None:
                write_private(output, text)
        else:
            with Workspace(workspace) as ws:
                document = ws.privacy.export(kind, value, actor=cli_actor(), output=output)
            text = json.dumps(document, indent=2, ensure_ascii=False)
        if output is None:
            sys.stdout.write(text + "\n")
        else:
            err.print(f"Export of {document['customer_id']} written to {output} (readable by "
                      "you only).", markup=False, highlight=False)


@privacy_app.command("erase")
def privacy_erase(
    workspace: WorkspaceOpt = Path("."),
    customer: Customer = None, email: Email = None, phone: Phone = None,
    identifier: Identifier = None,
    anonymise: Annotated[bool, typer.Option(
        "--anonymise", help="Keep their events for statistics under a random id; remove "
        "their identity.")] = False,
) -> None:
    """Erase one person from every table and file onetoone wrote (GDPR article 17); keyed
    hashes of their identifiers keep them from coming back with a later load. Idempotent;
    audited."""
    from onetoone.privacy.rights import selector

    mode = "anonymise" if anonymise else "erase"
    with _friendly():
        kind, value = selector(customer, email, phone, identifier)
        server = _served(workspace)
        if server is not None:
            found = _served_customer(server, kind, value)
            result = _job(server, "erase", {"customer": found, "mode": mode}, "erasing")
        else:
            with Workspace(workspace) as ws:
                result = ws.privacy.erase(kind, value, mode=mode, actor=cli_actor()).summary()
            _compact(Path(workspace))
    if result.get("already"):
        console.print("Nothing to do: this person was already erased.", markup=False)
        return
    rows = result.get("rows") or {}
    console.print(f"{'Anonymised' if anonymise else 'Erased'} {', '.join(result['customers'])}:"
                  f" {sum(rows.values()):,} rows in {len(rows)} tables"
                  + (f", {len(result['files'])} files rewritten or removed"
                     if result.get("files") else "") + ".", markup=False, highlight=False)
    if server is not None:
        console.print("The database file is compacted when the server stops.", markup=False)


@privacy_app.command("retention")
def privacy_retention(
    workspace: WorkspaceOpt = Path("."),
    apply: Annotated[bool, typer.Option(
        "--apply", help="Erase or anonymise them (default: only count them).")] = False,
) -> None:
    """Customers without activity for longer than [privacy] retention_days: counted, or with
    --apply erased or anonymised as [privacy] retention_mode says."""
    with _friendly():
        server = _served(workspace)
        if server is not None:
            result = _job(server, "retention", {"dry_run": not apply}, "retention")
        else:
            with Workspace(workspace) as ws:
                result = ws.privacy.retention(actor=cli_actor(), apply=apply)
            if apply:
                _compact(Path(workspace))
    verb = {"erase": "erased", "anonymise": "anonymised"}[result["mode"]]
    if result["applied"]:
        console.print(f"{result['customers']:,} customers inactive for more than "
                      f"{result['retention_days']} days {verb}.", markup=False)
    else:
        console.print(f"{result['customers']:,} customers inactive for more than "
                      f"{result['retention_days']} days would be {verb} (run again with "
                      "--apply).", markup=False)


@privacy_app.command("compact")
def privacy_compact(workspace: WorkspaceOpt = Path(".")) -> None:
    """Rewrite the database file after erasures so that no erased value stays in it (the
    command line does it after an erasure; a server when it stops)."""
    with _friendly():
        if _served(workspace) is not None:
            raise OneToOneError("The server of this workspace holds the database file.",
                                hint="It compacts the file when it stops.")
        _compact(Path(workspace))


campaign_app = typer.Typer(help="Campaigns of [campaigns.NAME] and those created through "
                           "the API: preview, run, status, bounces (docs/campaigns.md).",
                           no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")


def _counts_table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    for label, value in rows:
        table.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


@campaign_app.command("preview")
def campaign_preview(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Who would get what and what it should bring, with sample messages; nothing written,
    no cap consumed."""
    from urllib.parse import quote

    with _friendly():
        result = _either(
            workspace, lambda server: server.call(
                "GET", f"/v1/campaigns/{quote(name, safe='')}/preview"),
            lambda ws: _audited(ws, "campaign.preview", ws.campaigns.preview(name)))
    _counts_table(f"Campaign {name} on {result['channel']} (preview)", [
        ("customers", result["customers"]), ("in the audience", result["audience"]),
        *((f"  not sent: {reason}", n) for reason, n in result["not_sent"].items()),
        ("held out (control group)", result["held_out"]), ("to send", result["to_send"]),
        *((f"  {action}", n) for action, n in result["actions"].items()),
        ("expected responses", result["expected_responses"]),
        ("expected value", result["expected_value"])])
    for sample in result["samples"]:
        console.print(json.dumps(sample, ensure_ascii=False), markup=False, highlight=False)
    for error in result["errors"]:
        err.print(f"Template error: {error}", markup=False, highlight=False)
    if result["errors"]:
        raise typer.Exit(1)


def _audited(ws: Workspace, action: str, result: dict[str, Any]) -> dict[str, Any]:
    ws.audit(cli_actor(), action, None, campaign=result["campaign"],
             customers=result["audience"], to_send=result["to_send"])
    return result


@campaign_app.command("run")
def campaign_run(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Send the campaign: idempotent (a customer gets one message per occurrence), and a
    run that stopped part way sends the rest."""
    from onetoone.jobs import CAMPAIGN_STEPS
    from onetoone.progress import silent

    with _friendly():
        result = _either(workspace, lambda server: _job(server, "campaign", {"name": name},
                                                        "sending"),
                         lambda ws: CAMPAIGN_STEPS["campaign"][0](ws, {"name": name}, silent))
    delivery = result["delivery"]
    _counts_table(f"Campaign {name}: run {result['run_id']}", [
        ("in the audience", result["audience"]),
        ("already in this run", result["already_in_this_occurrence"]),
        *((f"  not sent: {reason}", n) for reason, n in result["not_sent"].items()),
        ("held out (control group)", result["held_out"]), ("decided now", result["to_send"]),
        ("sent", delivery["sent"]), ("failed", delivery["failed"])])
    for reason, count in delivery["errors"].items():
        err.print(f"{count:,} failed: {reason}", markup=False, highlight=False)


@campaign_app.command("status")
def campaign_status(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Selected, held out, sent, delivered, bounced, opened, clicked, converted,
    unsubscribed, and the lift against the control group."""
    from urllib.parse import quote

    from onetoone.api.routes.campaigns import _lift

    with _friendly():
        result = _either(
            workspace, lambda server: server.call(
                "GET", f"/v1/campaigns/{quote(name, safe='')}/status"),
            lambda ws: ws.campaigns.status(name, lift=lambda run: _lift(ws, run)))
    _counts_table(f"Campaign {name}", [
        (key.replace("_", " "), result[key]) for key in (
            "selected", "held_out", "sent", "delivered", "bounced", "failed", "queued",
            "opened", "clicked", "converted", "unsubscribed")])
    for found in result.get("lift", []):
        console.print(f"{found['run']}: {found.get('text') or found.get('error')}",
                      markup=False, highlight=False)


@campaign_app.command("bounces")
def campaign_bounces(
    workspace: WorkspaceOpt = Path("."),
    mailbox: Annotated[Path | None, typer.Option(
        "--mailbox", help="A Maildir folder or an mbox file to read once, instead of the "
        "channels' bounce_mailbox.")] = None,
    channel: Annotated[str | None, typer.Option(
        "--channel", help="The smtp channel whose bounces to read (default: every one "
        "with a bounce_mailbox).")] = None,
) -> None:
    """Apply the delivery status notifications (RFC 3464) of the bounce mailboxes: hard
    bounces turn deliveries 'bounced' and their addresses are not written to again; customers'
    replies to the campaigns' e-mails are recorded; each message applies once."""
    from onetoone.channels.bounces import intake

    args: dict[str, Any] = {k: v for k, v in (
        ("channel", channel), ("mailbox", None if mailbox is None else str(mailbox.resolve())))
        if v is not None}
    with _friendly():
        result = _either(workspace, lambda server: _job(server, "bounces", args, "reading"),
                         lambda ws: intake(ws, channel, mailbox, actor=cli_actor()))
    _counts_table("Bounces", [
        ("messages read", result["messages"]), ("bounced (hard)", result["bounced"]),
        ("soft (delayed, 4.x.x)", result["soft"]), ("unmatched", result["unmatched"]),
        ("applied before", result["already"]), ("replies of customers", result["replies"]),
        ("other messages", result["other"])])


audience_app = typer.Typer(help="Audiences of [audiences.NAME] for ads and addressable TV "
                           "(docs/channels.md).", no_args_is_help=True)
app.add_typer(audience_app, name="audience")


@audience_app.command("export")
def audience_export_command(
    name: Annotated[str, typer.Argument(help="Audience name.")],
    platform: Annotated[str, typer.Option(
        "--platform", "-p", help="google (Customer Match), meta (custom audience) or csv "
        "(plain values, for operators that match themselves).")],
    workspace: WorkspaceOpt = Path("."),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="CSV file (readable by you only); default: "
        "audiences/NAME-PLATFORM.csv in the workspace.")] = None,
) -> None:
    """Write the audience's file for an ad platform: only customers whose consent covers its
    purpose on the channel 'ads'; a holdout kept out (audiences/NAME-holdout.csv). Audited."""
    from urllib.parse import quote

    from onetoone.channels import audiences

    def alone(ws: Workspace) -> dict[str, Any]:
        result = audiences.audience_export(ws.decisions, ws.config.audiences, ws.root, name,
                                           platform, output)
        audiences.record_export(ws.audit, cli_actor(), result, ws.root)
        return result

    with _friendly():
        # with a server, it judges the path (inside its workspace only)
        result = _either(workspace, lambda server: server.call(
            "POST", f"/v1/audiences/{quote(name, safe='')}/export",
            {"platform": platform,
             "output": None if output is None else str(Path(output).resolve())}), alone)
    _counts_table(f"Audience {name} for {result['platform']} (purpose {result['purpose']})", [
        ("customers", result["customers"]), ("selected", result["selected"]),
        ("  without consent", result["without_consent"]),
        ("  without an e-mail, phone or address", result["without_identifiers"]),
        ("  in the universal control group", result["universal_control"]),
        ("  held out", result["held_out"]), ("exported", result["exported"])])
    console.print(f"Written to {result['file']} (readable by you only); holdout in "
                  f"{result['holdout_file']}.", markup=False, highlight=False)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # a bug, not a user mistake: say so briefly
        if _state["debug"]:
            raise
        err.print(f"[bold red]Internal error:[/] {type(exc).__name__}: {escape(str(exc))}. "
                  "Run again with --debug for the traceback and report it.")
        sys.exit(2)


if __name__ == "__main__":
    main()
