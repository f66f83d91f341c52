"""The golden record: one row per customer, each field chosen from its records by a rule.

Survivorship rules (configurable per field in ``[identify.survivorship]``):

* ``most_recent``: the value of the most recently updated record (``updated_at``, else
  ``created_at``, else the latest load);
* ``most_frequent``: the value most records agree on, ties to the most recent;
* ``source_priority``: the value from the first source in ``source_priority``, ties to the most
  recent;
* ``longest``: the longest value (the fullest address), ties to the most recent;
* ``non_empty``: the value of the most complete record (most fields filled).

Reference records (customers known only from an event) take part in linking but give no field.
``created_at`` is the earliest and ``updated_at`` the latest of the records'.
"""

from __future__ import annotations

import duckdb

from onetoone.config import IdentifySettings
from onetoone.ingest._normalize import ident, q
from onetoone.schema import ENTITIES

DEFAULT_RULES = {
    "first_name": "most_frequent",
    "last_name": "most_frequent",
    "full_name": "most_frequent",
    "birth_date": "most_frequent",
    "gender": "most_frequent",
}

FIELDS = [f.name for f in ENTITIES["customers"].fields
          if f.name not in ("source_id", "created_at", "updated_at")]


def rule_of(settings: IdentifySettings, field: str) -> str:
    return settings.survivorship.get(field, DEFAULT_RULES.get(field, "most_recent"))


def _field_query(field: str, rule: str) -> str:
    col = ident(field)
    recent = "(g._recency, g.ingestion_id, g.source_row, g.record_key)"
    base = f"FROM _golden_input g WHERE {col} IS NOT NULL"
    if rule == "most_frequent":
        return f"""SELECT customer_id, arg_max(v, (c, rk)) AS v, arg_max(k, (c, rk)) AS k FROM (
            SELECT customer_id, {col} AS v, count(*) AS c, max({recent}) AS rk,
                   arg_max(g.record_key, {recent}) AS k {base} GROUP BY ALL) GROUP BY ALL"""
    order = {
        "most_recent": recent,
        "source_priority": f"(-g._source_rank, {recent})",
        "longest": f"(length({col}::VARCHAR), {recent})",
        "non_empty": f"(g._filled, {recent})",
    }[rule]
    return (f"SELECT customer_id, arg_max({col}, {order}) AS v, "
            f"arg_max(g.record_key, {order}) AS k {base} GROUP BY ALL")


#: Profile records per partition of the golden-record query: its per-field ``arg_max``
#: aggregates cannot spill to disk, so customers are summarised in parts of about this many
#: records (a hash of the customer id picks the part), which bounds the memory they hold.
PART_RECORDS = 200_000


def rebuild_golden(con: duckdb.DuckDBPyConnection, settings: IdentifySettings,
                   customer_ids_table: str) -> None:
    """Replace the ``customers`` rows of the customers listed in ``customer_ids_table``."""
    con.execute(f"""
        DELETE FROM customers
        WHERE customer_id IN (SELECT customer_id FROM {customer_ids_table})
    """)
    n_records = int(con.execute(f"""
        SELECT count(*) FROM customer_links
        WHERE customer_id IN (SELECT customer_id FROM {customer_ids_table})
    """).fetchall()[0][0])
    parts = max(1, -(-n_records // PART_RECORDS))
    for part in range(parts):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _golden_ids AS
            SELECT customer_id FROM {customer_ids_table}
            WHERE {parts} = 1 OR hash(customer_id) % {parts} = {part}
        """)
        _insert_golden(con, settings, "_golden_ids")
    con.execute("DROP TABLE IF EXISTS _golden_input")
    con.execute("DROP TABLE IF EXISTS _golden_ids")


def _insert_golden(con: duckdb.DuckDBPyConnection, settings: IdentifySettings,
                   customer_ids_table: str) -> None:
    """Insert the ``customers`` rows of the customers listed in ``customer_ids_table``."""
    ranks = " ".join(f"WHEN {q(s)} THEN {i}" for i, s in enumerate(settings.source_priority))
    source_rank = f"CASE r.source {ranks} ELSE {len(settings.source_priority)} END" \
        if ranks else "0"
    filled = " + ".join(f"({ident(f)} IS NOT NULL)::INT" for f in FIELDS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _golden_input AS
        SELECT l.customer_id, r.*,
               coalesce(r.updated_at, r.created_at, TIMESTAMP '1900-01-01') AS _recency,
               {source_rank} AS _source_rank, {filled} AS _filled
        FROM customer_records r JOIN customer_links l USING (record_key)
        WHERE l.customer_id IN (SELECT customer_id FROM {customer_ids_table})
          AND r.origin = 'profile'
    """)
    joins = []
    selects = []
    sources = []
    for i, field in enumerate(FIELDS):
        joins.append(f"LEFT JOIN ({_field_query(field, rule_of(settings, field))}) f{i} "
                     f"USING (customer_id)")
        selects.append(f"f{i}.v AS {ident(field)}")
        sources.append(f"{q(field)}, f{i}.k")
    con.execute(f"""
        INSERT INTO customers BY NAME
        WITH base AS (
            SELECT l.customer_id, count(*)::INTEGER AS record_count,
                   list(DISTINCT split_part(r.source, '~', 1)
                        ORDER BY split_part(r.source, '~', 1)) AS sources,
                   min(r.created_at) AS created_at, max(r.updated_at) AS updated_at,
                   least(min(r.created_at), min(i.started_at)) AS first_seen_at
            FROM customer_links l JOIN customer_records r USING (record_key)
            LEFT JOIN ingestions i ON i.ingestion_id = r.ingestion_id
            WHERE l.customer_id IN (SELECT customer_id FROM {customer_ids_table})
            GROUP BY l.customer_id
        )
        SELECT base.customer_id, {', '.join(selects)}, base.created_at, base.updated_at,
               base.record_count, base.sources,
               json_object({', '.join(sources)}) AS field_sources,
               base.first_seen_at, now()::TIMESTAMP AS resolved_at
        FROM base {' '.join(joins)}
    """)
