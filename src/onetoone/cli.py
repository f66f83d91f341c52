"""The ``onetoone`` command line: a thin adapter over :class:`onetoone.Workspace`.

Errors are one sentence and what to do, exit code 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from onetoone.errors import OneToOneError
from onetoone.ingest import SourceResult
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


def _summary_table(ws: Workspace) -> Table:
    table = Table(title=f"Workspace {ws.root}", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in ws.summary().items():
        table.add_row(name, f"{count:,}")
    return table


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
        with Workspace(workspace) as ws, _progress("loading") as progress:
            results = ws.ingest(
                source, entity=entity, columns=_parse_pairs(map_, "--map"),
                identifiers=_parse_pairs(identifier, "--identifier"), options=options,
                progress=progress,
                path=Path(source) if entity and source else None,
            )
        console.print(_ingest_table(results))
        quarantined = sum(r.total("rows_quarantined") for r in results)
        console.print(
            f"Done in {time.perf_counter() - started:.1f} s."
            + (f" {quarantined:,} rows quarantined: see the 'quarantine' table." if quarantined
               else "")
        )


@app.command()
def demo(
    workspace: WorkspaceOpt = Path("onetoone-demo"),
    customers: Annotated[int, typer.Option(help="Number of people in the company.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
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
        config = (
            f'[workspace]\nname = "demo"\ndefault_country = "FR"\ntimezone = "Europe/Paris"\n'
            f'currency = "EUR"\nlanguage = "fr"\n\n{company.sources_toml}'
        )
        with Workspace.init(root, config_text=config) as ws:
            with _progress("loading") as progress:
                results = ws.ingest(progress=progress)
            console.print(_ingest_table(results))
            console.print(_summary_table(ws))
        console.print(
            f"Demo company of {customers:,} people ready in {root} "
            f"({time.perf_counter() - started:.1f} s). Ground truth is in {root / 'truth'}."
        )


@app.command()
def status(workspace: WorkspaceOpt = Path(".")) -> None:
    """Rows in every table of the workspace."""
    with _friendly(), Workspace(workspace, read_only=True) as ws:
        console.print(_summary_table(ws))


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
