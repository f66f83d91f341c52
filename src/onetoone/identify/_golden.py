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

from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import ident, q
from onetoone.schema import ENTITIES
from onetoone.store import Connection

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


#: A rule's order is one integer: its criterion times this plus the record's rank among its
#: customer's records by recency (``updated_at``, else ``created_at``, then load, row and key),
#: so the winning record's rank is the order modulo this.
_RANK_SCALE = 2**32


def _order(field: str, rule: str, n_sources: int) -> str:
    """The integer a field's rule maximises over a customer's records (rank breaks ties)."""
    criterion = {
        "source_priority": f"{n_sources} - _source_rank",
        "longest": f"length({ident(field)}::VARCHAR)",
        "non_empty": "_filled",
    }[rule]
    return f"(({criterion})::BIGINT * {_RANK_SCALE} + _rk)"


#: Profile records per partition of the golden-record query: it holds, per customer, every
#: field's running winner (value and key), so customers are summarised in parts of about this
#: many records (a hash of the customer id picks the part), which bounds the memory they hold.
PART_RECORDS = 500_000


def rebuild_golden(con: Connection, settings: IdentifySettings,
                   customer_ids_table: str | None, links: str) -> None:
    """Replace the ``customers`` rows of the customers listed in ``customer_ids_table``
    (``None``: every customer's) by those of the customers in ``links`` (``record_key``,
    ``customer_id``: the links of the listed customers that still have records).

    The customers' profile records are read once and ranked by recency within each customer;
    each field's winning record is the one maximising an integer order (``arg_max``, no
    per-field join): its rule's criterion, then the rank. ``most_frequent`` counts values in
    one ``GROUP BY`` per field, whose winner's value and key are those of the record of the
    winning rank.
    """
    con.execute("DELETE FROM customers" if customer_ids_table is None else f"""
        DELETE FROM customers
        WHERE customer_id IN (SELECT customer_id FROM {customer_ids_table})
    """)
    rules = {field: rule_of(settings, field) for field in FIELDS}
    n_records = _golden_input(con, settings, rules, links)
    parts = max(1, -(-n_records // PART_RECORDS))
    _golden_base(con, parts, links)
    _most_frequent(con, rules, parts)
    for part in range(parts):
        _insert_golden(con, settings, rules, parts, part)
    for table in ("_golden_input", "_golden_base", "_golden_frequent"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _golden_input(con: Connection, settings: IdentifySettings,
                  rules: dict[str, str], links: str) -> int:
    """Write ``_golden_input``: the profile records, ranked, with their rules' criteria."""
    extra = []
    if "source_priority" in rules.values():
        ranks = " ".join(f"WHEN {q(s)} THEN {i}" for i, s in enumerate(settings.source_priority))
        extra.append(f"CASE r.source {ranks} ELSE {len(settings.source_priority)} END "
                     "AS _source_rank" if ranks else "0 AS _source_rank")
    if "non_empty" in rules.values():
        filled = " + ".join(f"({ident(f)} IS NOT NULL)::INT" for f in FIELDS)
        extra.append(f"{filled} AS _filled")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _golden_input AS
        SELECT l.customer_id, r.record_key, {', '.join(f'r.{ident(f)}' for f in FIELDS)},
               row_number() OVER (PARTITION BY l.customer_id ORDER BY
                   coalesce(r.updated_at, r.created_at, TIMESTAMP '1900-01-01') NULLS LAST,
                   r.ingestion_id NULLS LAST, r.source_row NULLS LAST,
                   r.record_key NULLS LAST) AS _rk
               {''.join(f', {e}' for e in extra)}
        FROM customer_records r JOIN {links} l USING (record_key)
        WHERE r.origin = 'profile'
    """)
    return int(con.execute("SELECT count(*) FROM _golden_input").fetchall()[0][0])


def _golden_base(con: Connection, parts: int, links: str) -> None:
    """Write ``_golden_base``: what every record of a customer gives (counts, dates, sources)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _golden_base AS
        SELECT l.customer_id, count(*)::INTEGER AS record_count,
               list_sort(list_distinct(list(split_part(r.source, '~', 1)))) AS sources,
               min(r.created_at) AS created_at, max(r.updated_at) AS updated_at,
               least(min(r.created_at), min(i.started_at)) AS first_seen_at,
               hash(l.customer_id) % {parts} AS _part
        FROM {links} l JOIN customer_records r USING (record_key)
        LEFT JOIN ingestions i ON i.ingestion_id = r.ingestion_id
        GROUP BY l.customer_id
    """)


def _most_frequent(con: Connection, rules: dict[str, str], parts: int) -> None:
    """Write ``_golden_frequent``: per customer, the order of each ``most_frequent`` winner.

    A value's order is its count, then the rank of its most recent record (that record is the
    winner), over a ``GROUP BY`` of the customer and the value.
    """
    fields = [f for f, rule in rules.items() if rule == "most_frequent"]
    counts = [f"""SELECT customer_id, {i} AS i,
                         count(*) * {_RANK_SCALE} + max(_rk) AS o
                  FROM _golden_input WHERE {ident(f)} IS NOT NULL
                  GROUP BY customer_id, {ident(f)}""" for i, f in enumerate(fields)]
    winners = "".join(f", max(o) FILTER (WHERE i = {i}) AS {ident(f'_w_{f}')}"
                      for i, f in enumerate(fields))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _golden_frequent AS
        SELECT customer_id, hash(customer_id) % {parts} AS _part{winners}
        FROM ({' UNION ALL '.join(counts) or 'SELECT NULL AS customer_id, 0 AS i, 0 AS o'})
        GROUP BY customer_id
    """)


def _insert_golden(con: Connection, settings: IdentifySettings,
                   rules: dict[str, str], parts: int, part: int) -> None:
    """Insert the ``customers`` rows of the customers whose id hashes to ``part``.

    A field's value and source record are those of the record maximising its order
    (``arg_max``: a running value per customer, not a sorted list of its records, which took
    a fifth longer); a ``most_frequent`` field's are those of the record of the winner's
    rank."""
    selects = []
    sources = []
    for field, rule in rules.items():
        col = ident(field)
        key = ident(f"_k_{field}")
        if rule == "most_frequent":
            pick = f"FILTER (WHERE i._rk = m.{ident(f'_w_{field}')} % {_RANK_SCALE})"
            selects.append(f"any_value(i.{col}) {pick} AS {col}, "
                           f"any_value(i.record_key) {pick} AS {key}")
        else:
            order = "i._rk" if rule == "most_recent" else \
                _order(field, rule, len(settings.source_priority))
            pick = f"FILTER (WHERE i.{col} IS NOT NULL)"
            selects.append(f"arg_max(i.{col}, {order}) {pick} AS {col}, "
                           f"arg_max(i.record_key, {order}) {pick} AS {key}")
        sources.append(f"{q(field)}, g.{key}")
    con.execute(f"""
        INSERT INTO customers BY NAME
        WITH g AS (
            SELECT i.customer_id, {', '.join(selects)}
            FROM _golden_input i
            LEFT JOIN (SELECT * FROM _golden_frequent WHERE _part = {part}) m
                 USING (customer_id)
            {f"WHERE hash(i.customer_id) % {parts} = {part}" if parts > 1 else ""}
            GROUP BY i.customer_id
        )
        SELECT b.customer_id, {', '.join(f'g.{ident(f)}' for f in rules)},
               b.created_at, b.updated_at, b.record_count, b.sources,
               json_object({', '.join(sources)}) AS field_sources,
               b.first_seen_at, now()::TIMESTAMP AS resolved_at
        FROM _golden_base b LEFT JOIN g USING (customer_id)
        WHERE b._part = {part}
    """)
