"""The identifier graph: which record may be joined to which identifier value, after guards.

Guards keep bad identifiers from merging different people (see docs/identity.md):

* garbage values are never used: listed placeholders (``test@test.com``, ``n/a``), values
  shorter than ``min_length``, values made of one repeated character (``aaaa@gmail.com``,
  ``999999``; for phones, the last eight digits: ``+33600000000``), e-mails at test
  domains or with a generic local part (``contact@``, ``info@``);
* a value carried by more than ``max_records_per_value`` records (a store's phone) is ignored;
* a *shared* value, whose records disagree on first name (or on birth date), only joins records
  that agree on it: the value node is split by first name (records without one join the most
  common group), so a family e-mail does not merge the family.

Everything is set-based SQL; the result is an integer-coded edge list for the component step.
"""

from __future__ import annotations

import duckdb

from onetoone.config import IdentifySettings
from onetoone.ingest._normalize import q


def _in_list(expr: str, values: list[str]) -> str:
    if not values:
        return "false"
    return f"{expr} IN ({', '.join(q(v.lower()) for v in values)})"


def garbage_predicate(settings: IdentifySettings, type_: str = "type",
                      value: str = "value") -> str:
    """SQL that is true for an identifier value that must never be used to join records."""
    local = f"CASE WHEN {type_} = 'email' THEN split_part({value}, '@', 1) ELSE {value} END"
    alnum = f"regexp_replace(lower({local}), '[^a-z0-9]', '', 'g')"
    tail = f"CASE WHEN {type_} = 'phone' THEN right({alnum}, 8) ELSE {alnum} END"
    domain = f"lower(split_part({value}, '@', 2))"
    email_bad = (
        f"({type_} = 'email' AND ({_in_list(domain, settings.garbage_email_domains)} "
        f"OR {domain} LIKE 'example.%' OR {domain} LIKE 'test.%' "
        f"OR {_in_list(f'lower(split_part({value}, {q(chr(64))}, 1))', settings.generic_email_local_parts)}))"  # noqa: E501
    )
    return (
        f"({value} IS NULL OR length({value}) < {settings.min_length} "
        f"OR {_in_list(f'lower({value})', settings.garbage_values)} "
        f"OR {alnum} = '' OR length(list_distinct(string_split({tail}, ''))) <= 1 "
        f"OR {email_bad})"
    )


def type_rank(settings: IdentifySettings) -> str:
    """SQL rank of an identifier type: 1 for the strongest; unlisted types after the list."""
    order = settings.identifier_priority
    cases = " ".join(f"WHEN {q(t)} THEN {i + 1}" for i, t in enumerate(order))
    return f"(CASE type {cases} ELSE {len(order) + 1} END)" if order else "1"


def build_records(con: duckdb.DuckDBPyConnection) -> None:
    """``_rec``: every customer record with an integer index and its discriminators."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _rec AS
        SELECT (row_number() OVER (ORDER BY record_key) - 1)::BIGINT AS idx, record_key,
               nullif(lower(strip_accents(coalesce(first_name,
                      split_part(trim(full_name), ' ', 1)))), '') AS fn,
               birth_date AS bd, ingestion_id, origin
        FROM customer_records
    """)


def build_identifier_edges(con: duckdb.DuckDBPyConnection, settings: IdentifySettings) -> None:
    """``_id_edges(idx, node, type, value, rank)``: record → (guarded) identifier value node.

    Needs ``_rec``. Values held by a single record are left out: they join nothing.
    """
    ignore = _in_list("type", settings.ignore_types)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _id_edges AS
        WITH ids AS (
            SELECT DISTINCT r.idx, i.type, i.value, r.fn, r.bd::VARCHAR AS bd
            FROM identifiers i JOIN _rec r USING (record_key)
            WHERE NOT ({ignore}) AND NOT {garbage_predicate(settings, 'i.type', 'i.value')}
        ), stats AS (
            SELECT type, value, count(DISTINCT idx) AS n, count(DISTINCT fn) AS n_fn,
                   count(DISTINCT bd) AS n_bd
            FROM ids GROUP BY ALL
            HAVING count(DISTINCT idx) BETWEEN 2 AND {settings.max_records_per_value}
        ), tagged AS (
            SELECT ids.idx, ids.type, ids.value,
                   CASE WHEN s.n >= {settings.shared_min_records} AND s.n_fn >= 2 THEN ids.fn
                        WHEN s.n >= {settings.shared_min_records} AND s.n_bd >= 2 THEN ids.bd
                   END AS part,
                   s.n >= {settings.shared_min_records} AND (s.n_fn >= 2 OR s.n_bd >= 2)
                       AS shared
            FROM ids JOIN stats s USING (type, value)
        ), common AS (  -- the most common group of a shared value, for records without one
            SELECT type, value, arg_max(part, (c, part)) AS part FROM (
                SELECT type, value, part, count(*) AS c FROM tagged
                WHERE shared AND part IS NOT NULL GROUP BY ALL) GROUP BY ALL
        )
        SELECT t.idx, t.type, t.value,
               t.type || ':' || t.value ||
                   CASE WHEN t.shared THEN '|' || coalesce(t.part, c.part) ELSE '' END AS node,
               t.shared, {type_rank(settings)} AS rank
        FROM tagged t LEFT JOIN common c USING (type, value)
    """)
    # A split value node that now holds a single record joins nothing.
    con.execute("""
        DELETE FROM _id_edges WHERE node IN
          (SELECT node FROM _id_edges GROUP BY node HAVING count(*) < 2)
    """)
