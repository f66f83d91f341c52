"""Where a person's data lives: every table and file of the workspace that can hold it, with
how to find their rows and what erasure and anonymisation do there (docs/privacy.md).

Every capability that stores data about a person adds its table here; a test fails when a
table with a ``customer_id`` or ``customer_record_key`` column is missing.

The predicates read three temporary tables that :mod:`onetoone.privacy.rights` fills for the
people concerned: ``_subject_ids`` (customer_id: their ids, merged-away ones included),
``_subject_records`` (record_key: their customer records) and ``_subject_values`` (value:
their identifier values and source ids as text, to find their rows in ``quarantine``).
"""

from __future__ import annotations

from dataclasses import dataclass

IDS = "customer_id IN (SELECT customer_id FROM _subject_ids)"
RECORDS = "record_key IN (SELECT record_key FROM _subject_records)"
EVENT = f"({IDS} OR customer_record_key IN (SELECT record_key FROM _subject_records))"


@dataclass(frozen=True)
class Holding:
    """One table holding a person's rows.

    ``anonymise``: on anonymisation the rows stay, for statistics, with ``customer_id``
    replaced by a random id of its own, ``customer_record_key`` emptied and these columns
    emptied; ``None``: the rows are deleted (they are the person's identity). ``keep``: the
    rows stay on erasure too (the audit log, which proves the erasure and holds no personal
    data)."""

    table: str
    where: str
    anonymise: tuple[str, ...] | None = None
    keep: bool = False
    #: a working table a step makes (not in the schema; may be absent)
    working: bool = False


_EVENT_TEXT = ("attributes",)

#: In the order erasure goes through them (a table before those its predicate reads).
HOLDINGS: tuple[Holding, ...] = (
    # lines belong to transactions by the transaction's source id, as value and needs read them
    Holding("transaction_items",
            "transaction_id IN (SELECT t.source_id FROM transactions t "
            f"WHERE t.{IDS} OR t.customer_record_key IN (SELECT record_key FROM "
            "_subject_records))", anonymise=_EVENT_TEXT),
    Holding("transactions", EVENT, anonymise=_EVENT_TEXT),
    Holding("interactions", EVENT, anonymise=(*_EVENT_TEXT, "text")),
    Holding("consents", EVENT),
    Holding("contracts", EVENT, anonymise=_EVENT_TEXT),
    Holding("social_posts", EVENT, anonymise=(*_EVENT_TEXT, "handle", "text")),
    Holding("feedback", EVENT, anonymise=(*_EVENT_TEXT, "text")),
    Holding("decisions", IDS, anonymise=("context",)),
    Holding("responses", IDS, anonymise=()),
    Holding("outbound", IDS),
    Holding("deliveries", IDS),
    Holding("customer_scores", IDS),
    Holding("identity_review", "record_key_l IN (SELECT record_key FROM _subject_records) "
            "OR record_key_r IN (SELECT record_key FROM _subject_records)"),
    Holding("identity_overrides", f"{RECORDS} OR other_record_key IN "
            "(SELECT record_key FROM _subject_records)"),
    Holding("identity_events", f"{IDS} OR other_customer_id IN "
            "(SELECT customer_id FROM _subject_ids)"),
    Holding("identity_graph", RECORDS),
    Holding("identity_match_input", "unique_id IN (SELECT record_key FROM _subject_records)",
            working=True),
    Holding("identifiers", RECORDS),
    Holding("customer_links", f"{RECORDS} OR {IDS}"),
    Holding("customer_ids", f"{IDS} OR merged_into IN (SELECT customer_id FROM _subject_ids)"),
    Holding("customers", IDS),
    Holding("customer_records", RECORDS),
    Holding("quarantine", "EXISTS (SELECT 1 FROM _subject_values v "
            "WHERE contains(lower(raw), v.value))"),
    Holding("audit_log", IDS, keep=True),
)

#: Tables without any row about one person: aggregates, models, configuration, operations.
#: ``jobs`` keeps the arguments of identity decisions (customer ids and record keys, which
#: point to nothing once the person is erased).
NO_PERSON: frozenset[str] = frozenset({
    "ingestions", "identity_runs", "needs_segments", "defection_monitor", "kpis", "jobs",
    "actions", "propensities", "api_keys", "erasures", "products", "campaign_definitions",
})

#: Folders of the workspace where onetoone writes files that can name a person: outbound
#: lists (CSV, one row per person) and the subject-access exports it wrote there.
FILE_FOLDERS: tuple[str, ...] = ("outbound", "privacy")
#: The outbox of messages not sent to a real channel (docs/channels.md): e-mails as
#: ``outbox/email/<campaign>/<delivery_id>.eml``, other channels as ``outbox/<channel>.jsonl``
#: (one JSON object a line, with its ``customer_id``).
OUTBOX = "outbox"
#: Direct mail of a ``print`` channel, under ``outbox/print/<campaign>/``: the mailing files
#: ``<occurrence>.csv`` (a row a message: its ``customer_id``, name, postal address and, in
#: ``code``, the file name of its QR code) and the codes ``<delivery_id>.png`` or ``.svg``.
PRINT = "print"
PRINT_CODES = (".png", ".svg")
#: Audience exports for ads and addressable TV (docs/channels.md), by default under this
#: folder. A hashed file (Google, Meta) names no customer, so every export is written with a
#: sidecar ``<file>.ids``: the customer id of each of its rows, in order, by which erasure
#: finds the person's rows and removes them. Not a :data:`FILE_FOLDERS` folder: those files
#: are read by their ``customer_id`` column.
AUDIENCES = "audiences"
AUDIENCE_IDS = ".ids"


def holding(table: str) -> Holding:
    return next(h for h in HOLDINGS if h.table == table)
