"""Build and write the HTML report (see the package docstring and docs/report.md)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from onetoone.clock import utcnow
from onetoone.differentiate import tiers as tiering
from onetoone.differentiate.value import MODEL_LABELS, ValueResult
from onetoone.measure.kpis import kpi_table
from onetoone.report import _plots as plots

if TYPE_CHECKING:
    import pandas as pd

    from onetoone.differentiate.defection.monitor import MonitorResult
    from onetoone.differentiate.settings import DefectionSettings, ValueSettings
    from onetoone.measure.lift import Lift


@dataclass
class ReportData:
    """Everything the report shows, gathered by the workspace (``Workspace.report``)."""

    name: str
    currency: str
    value: ValueResult
    #: whether ``value`` describes the as-of date scored last (else the last transaction day)
    stored: bool
    value_settings: ValueSettings
    defection_settings: DefectionSettings
    #: the defection monitor's history and the mass-defection check at the latest date
    monitor: pd.DataFrame
    alert: MonitorResult | None
    lifts: list[Lift]
    lift_window: int
    kpis: pd.DataFrame
    #: predicted against true value, when the base has a known truth (the demo company)
    truth: dict[str, Any] | None = None
    #: every campaign that ran: ``Campaigns.status`` with the lift of each run
    #: (:func:`onetoone.report.campaign_results`)
    campaigns: list[dict[str, Any]] = field(default_factory=list)


def write_report(data: ReportData, output: Path) -> Path:
    """Write the report to ``output``; PNG plots are saved next to the page as
    ``<page stem>-<plot>.png``."""
    path = Path(output).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    context = value_context(data, path)
    context["defection"] = defection_context(data, path, context)
    context["lifts"] = [r.as_dict() for r in data.lifts]
    context["lift_window"] = data.lift_window
    context["kpis"] = kpi_table(data.kpis, 12)
    context["campaigns"] = campaign_context(data.campaigns)
    template = (Path(__file__).parent / "report.html.j2").read_text(encoding="utf-8")
    html = _environment().from_string(template).render(**context)
    path.write_text(html, encoding="utf-8")
    return path


def value_context(data: ReportData, path: Path) -> dict[str, Any]:
    """Everything the value section shows; plots are drawn and saved when matplotlib is there."""
    result = data.value
    draw = plots.matplotlib_available()
    images: dict[str, str] = {}
    files: list[str] = []

    def keep(name: str, fig: Any) -> None:
        target = path.with_name(f"{path.stem}-{name}.png")
        images[name] = base64.b64encode(plots.save(fig, target)).decode("ascii")
        files.append(target.name)

    pyramid = result.pyramid
    pareto = result.pareto()
    buyers = result.scores.loc[result.scores["fallback"] != "no_purchase", "clv"]
    if draw:
        keep("value-pyramid", plots.pyramid(pyramid))
        curve = tiering.pareto_curve(buyers)
        keep("pareto", plots.pareto(curve[0], curve[1], pareto["top_1pct"], pareto["top_20pct"]))

    validation = result.validation
    models: list[dict[str, Any]] = []
    holdout: dict[str, Any] | None = None
    calibration_table = tracking_table = None
    if validation is not None:
        first_week, last_week = validation.holdout_weeks()
        holdout = {
            "first_week": first_week, "last_week": last_week,
            "start": (validation.calibration_end + _one_day()).date(),
            "end": validation.as_of.date(), "actual": validation.actual_total,
            "calibration_end": validation.calibration_end.date(),
            "customers": len(validation.summary),
        }
        for name, cand in validation.candidates.items():
            models.append({
                "name": MODEL_LABELS[name], "chosen": name == validation.chosen,
                "params": cand.model.params_ if cand.model is not None else {},
                "log_likelihood": cand.model.log_likelihood_ if cand.model is not None else None,
                "predicted": cand.predicted_total, "rmse": cand.rmse, "failure": cand.failure,
            })
        if validation.chosen is not None:
            label = MODEL_LABELS[validation.chosen]
            calibration_table = validation.by_frequency(validation.chosen)
            tracking_table = validation.tracking(validation.chosen)
            if draw:
                keep("calibration-holdout", plots.calibration(calibration_table, label))
                keep("tracking", plots.tracking(tracking_table, first_week - 1, label))

    truth = data.truth
    if truth is not None and "joined" in truth and draw:
        keep("predicted-vs-true", plots.truth_scatter(truth["joined"], truth["deciles"]))
    final_params = result.model.params_ if result.model is not None else {}
    return {
        "title": f"{data.name}: customer value report",
        "generated": utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "currency": data.currency,
        "result": result, "stored": data.stored, "model_label": MODEL_LABELS.get(result.model_name,
                                                                            result.model_name),
        "final_params": final_params, "spend_params": (result.spend_model.params_
                                                       if result.spend_model else {}),
        "pyramid": pyramid, "pareto": pareto, "n_customers": len(result.scores),
        "n_buyers": len(buyers), "models": models, "holdout": holdout,
        "calibration_table": calibration_table, "tracking_table": tracking_table,
        "truth": truth, "images": images, "files": files, "draw": draw,
        "settings": data.value_settings,
    }


def defection_context(data: ReportData, path: Path, context: dict[str, Any],
                      dates: int = 6) -> dict[str, Any] | None:
    """The defection monitor (docs/defection-and-needs.md): the mass-defection alert, the
    at-risk share of each value tier over time, the at-risk value of each needs segment over
    the last ``dates`` as-of dates, and tier x segment at the latest; None before any run."""
    import pandas as pd

    history, check = data.monitor.copy(), data.alert
    if history.empty or check is None:
        return None
    history["as_of"] = pd.to_datetime(history["as_of"]).dt.date
    settings = data.defection_settings
    tiers = history[history["needs_segment"] == "all"]
    shares = tiers.pivot_table(index="as_of", columns="value_tier", values="at_risk_share")
    values = tiers.pivot_table(index="as_of", columns="value_tier", values="at_risk_value")
    latest = history["as_of"].max()
    detail = history[(history["as_of"] == latest) & (history["needs_segment"] != "all")]
    recent = sorted(history["as_of"].unique())[-dates:]
    by_segment = (history[(history["needs_segment"] != "all") & history["as_of"].isin(recent)]
                  .pivot_table(index="needs_segment", columns="as_of", values="at_risk_value",
                               aggfunc="sum").fillna(0.0))
    if context["draw"]:
        target = path.with_name(f"{path.stem}-defection-monitor.png")
        context["images"]["defection-monitor"] = base64.b64encode(
            plots.save(plots.monitor(shares), target)).decode("ascii")
        context["files"].append(target.name)
    return {"alert": check.alert, "top_share": check.top_share,
            "previous_share": check.previous_share, "previous_as_of": check.previous_as_of,
            "latest": latest, "shares": shares.fillna(0.0), "at_risk_values": values.fillna(0.0),
            "detail": detail,
            "by_segment": by_segment, "threshold": settings.alert_threshold,
            "margin": settings.monitor_margin}


#: the counts of a campaign the report shows, in order
CAMPAIGN_COUNTS = ("selected", "held_out", "sent", "opened", "clicked", "converted",
                   "unsubscribed")


def campaign_context(campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each campaign's counts (with their share of the messages sent) and the lift of each
    run against its control group."""
    out = []
    for status in campaigns:
        sent = status.get("sent") or 0
        counts = [{"name": key.replace("_", " "), "value": int(status.get(key) or 0),
                   "share": (int(status.get(key) or 0) / sent
                             if sent and key not in ("selected", "held_out", "sent")
                             else None)}
                  for key in CAMPAIGN_COUNTS]
        out.append({"name": status["campaign"], "runs": status.get("runs", []),
                    "counts": counts,
                    "lifts": [{"error": None, "n_treated": 0, "n_control": 0, **found}
                              for found in status.get("lift", [])]})
    return out


def _one_day() -> Any:
    import pandas as pd

    return pd.Timedelta(days=1)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, d=0: f"{v:,.{d}f}"
    env.filters["pct"] = lambda v, d=0: f"{100 * v:.{d}f} %"
    env.filters["spct"] = lambda v, d=1: f"{100 * v:+.{d}f} %"  # signed: a lift
    return env
