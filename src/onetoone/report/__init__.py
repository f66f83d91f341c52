"""The HTML report of a workspace: one self-contained page a board can read.

The report receives its data (:class:`ReportData`, gathered by ``Workspace.report``) and only
lays it out: rendered with Jinja2; plots are drawn with matplotlib (the ``report`` extra,
imported lazily) and both inlined as PNG (no CDN, no script) and saved next to the page. Without
matplotlib the page has the tables and says how to get the plots. See docs/report.md.

:func:`write_workspace_report` gathers the data itself, the campaigns that ran included
(their counts and lift against their control group).
"""

from onetoone.report._gather import (
    campaign_results,
    report_data,
    run_lift,
    write_workspace_report,
)
from onetoone.report._html import ReportData, write_report

__all__ = ["ReportData", "campaign_results", "report_data", "run_lift", "write_report",
           "write_workspace_report"]
