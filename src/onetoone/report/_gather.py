"""What the report shows, gathered from a workspace.

:func:`report_data` gathers what ``Workspace.report`` gathers, plus the campaigns
(:func:`campaign_results`); :func:`write_workspace_report` writes the page from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from onetoone.errors import InvalidInputError, OneToOneError

if TYPE_CHECKING:
    from onetoone.report._html import ReportData

#: the workspace (``onetoone.workspace.Workspace``; not imported: the workspace imports the
#: report)
Workspace = Any


def campaign_results(ws: Workspace) -> list[dict[str, Any]]:
    """The status (``Campaigns.status``) of every campaign that ran, the file's and those
    created through the API (retired ones too), with the lift of each of its runs against its
    control group (``lift``: a list of ``{"run", "text", **Lift.as_dict()}``, or ``{"run",
    "error"}``). Without a campaign the decision service is not started."""
    campaigns = ws.campaigns
    names = [*campaigns.configs, *(d.name for d in campaigns.definitions.all()
                                   if d.name not in campaigns.configs)
             ] if campaigns.definitions is not None else list(campaigns.configs)
    found = [campaigns.status(name, lift=lambda run: run_lift(ws, run)) for name in names]
    return [status for status in found if status["runs"]]


def run_lift(ws: Workspace, run: str) -> dict[str, Any]:
    """The lift of one campaign run, all its actions together, or why there is none."""
    try:
        overall = ws.lift(campaign=run)[0]
    except OneToOneError as exc:
        return {"run": run, "error": exc.user_message()}
    return {"run": run, "text": str(overall), **overall.as_dict()}


def report_data(ws: Workspace) -> ReportData:
    """Everything the report shows (as ``Workspace.report`` gathers it, campaigns included)."""
    from onetoone.demo.truth import find_truth, truth_comparison
    from onetoone.differentiate.defection import check_alert, monitor_history
    from onetoone.report._html import ReportData

    stored = ws.scores.latest_as_of()
    value = ws.score(as_of=stored, write=False)
    monitor = monitor_history(ws.store)
    truth_folder = find_truth(ws.root)
    return ReportData(
        name=ws.config.workspace.name, currency=ws.config.workspace.currency,
        value=value, stored=stored is not None, value_settings=ws.config.value,
        defection_settings=ws.config.defection, monitor=monitor,
        alert=None if monitor.empty else check_alert(
            ws.store, None, ws.config.defection.monitor_margin),
        lifts=ws.lift(), lift_window=ws.config.control_groups.window_days,
        kpis=ws.kpis(write=False),
        truth=None if truth_folder is None else truth_comparison(ws.store, value,
                                                                 truth_folder),
        campaigns=campaign_results(ws))


def write_workspace_report(ws: Workspace, output: Path | str | None = None) -> Path:
    """Write the report of ``ws`` with its campaigns (default ``report/index.html`` in the
    workspace); returns its path."""
    from onetoone.report._html import write_report

    target = Path(output) if output is not None else ws.root / "report" / "index.html"
    data = report_data(ws)
    try:
        return write_report(data, target)
    except OSError as exc:  # a path that cannot be written: the caller's to change
        raise InvalidInputError(
            f"Cannot write the report to {str(target)[:200]}: {exc.strerror or exc}.",
            hint="Give another --output.") from None
