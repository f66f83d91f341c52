"""The identifier graph: which record may be joined to which identifier value, after guards.

Guards keep bad identifiers from merging different people (see docs/identity.md):

* garbage values are never used: listed placeholders (``test@test.com``, ``n/a``), values
  shorter than ``min_length``, values made of one repeated character (``aaaa@gmail.com``,
  ``999999``; for phones, the last eight digits: ``+33600000000``), e-mails at test
  domains or with a generic local part (``contact@``, ``info@``);
* a value carried by more than ``max_records_per_value`` records (a store's phone) is ignored;
* a *shared* value, whose records disagree on first name (or on birth date), only joins records
  that are *compatible*: same first name up to a typo (one edit), a nickname (a known pair or a
  prefix: Fred / Frédéric) or first and last names swapped (up to one typo), and birth dates
  that may be one person's when both are known (one typo, day and month swapped, within a
  year: the records share a contact value). The value
  node is split into its groups of compatible records (records without a first name join the
  largest group), so a family e-mail does not merge the family while one person's e-mail
  still joins her records whatever their typos.

Everything is set-based SQL; the result is an integer-coded edge list for the component step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from onetoone.identify._components import BIRTH_DAYS, item_components
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import q
from onetoone.store import Connection, engine_settings, frame_view

#: Common first-name nicknames (normalized: lower case, no accents, letters only) that are not a
#: prefix of the name; prefixes (fred / frederic) are recognised without a list. Extended by
#: ``[identify] nicknames``.
NICKNAMES: dict[str, str] = {
    "babeth": "elisabeth", "bill": "william", "bob": "robert", "jim": "james",
    "jp": "jeanpierre", "kiki": "christine", "mike": "michael", "tom": "thomas",
    "becky": "rebecca", "liv": "olivia", "mandy": "amandine", "mika": "mickael",
    "juju": "julien", "guigui": "guillaume", "patou": "patricia", "peggy": "margaret",
    "dick": "richard", "ted": "edward", "jojo": "josephine", "lolo": "laurent",
    "manu": "emmanuel", "fanfan": "francoise", "mimi": "michele",
}

#: Normalized name in SQL: lower case, no accents, letters only.
def norm_name(expr: str) -> str:
    return f"nullif(regexp_replace(lower(strip_accents(trim({expr}))), '[^a-z]', '', 'g'), '')"


def _short_long(fa: str, fb: str) -> tuple[str, str]:
    return (f"(CASE WHEN length({fa}) <= length({fb}) THEN {fa} ELSE {fb} END)",
            f"(CASE WHEN length({fa}) <= length({fb}) THEN {fb} ELSE {fa} END)")


def feminine(fa: str, fb: str) -> str:
    """SQL: one first name is the other's feminine form (Jean / Jeanne, Louis / Louise)."""
    short, long_ = _short_long(fa, fb)
    return (f"(starts_with({long_}, {short}) AND "
            f"substr({long_}, length({short}) + 1) IN ('e', 'ne', 'le', 'te', 'se'))")


def names_compatible(fa: str, fb: str, la: str, lb: str) -> str:
    """SQL: two first names (normalized) may be one person's (typo, nickname or swap)."""
    short, long_ = _short_long(fa, fb)
    prefix = (f"(length({long_}) - length({short}) >= 3 AND (starts_with({long_}, {short}) OR "
              f"(length({short}) >= 4 AND starts_with({long_}, left({short}, "
              f"length({short}) - 1)))))")
    # Swapped first and last names, with at most one typo over the two (Chloe Ryan / Ryna
    # Chloe); NULL names make it false, not unknown.
    swap = (f"coalesce(damerau_levenshtein({fa}, {lb}) + damerau_levenshtein({la}, {fb}) <= 1 "
            f"AND length({short}) >= 3, false)")
    return (f"({fa} = {fb} OR (length({short}) >= 4 AND damerau_levenshtein({fa}, {fb}) <= 1 "
            f"AND NOT {feminine(fa, fb)}) OR {prefix} OR {swap} OR "
            f"EXISTS (SELECT 1 FROM _nick k WHERE (k.nick = {fa} AND k.name = {fb}) "
            f"OR (k.nick = {fb} AND k.name = {fa})))")


def names_differ(fa: str, fb: str, la: str, lb: str) -> str:
    """SQL: two first names (normalized) are both known and clearly two people's: far apart
    (Jaro-Winkler below 0.8) or one the other's feminine form (Jean / Jeanne), and not one
    person's by :func:`names_compatible` (a typo, nickname or swap). The probabilistic veto's
    test of first names."""
    return (f"({fa} IS NOT NULL AND {fb} IS NOT NULL AND "
            f"(jaro_winkler_similarity({fa}, {fb}) < 0.8 OR {feminine(fa, fb)}) AND "
            f"NOT {names_compatible(fa, fb, la, lb)})")


def births_compatible(ba: str, bb: str, days: int = 0) -> str:
    """SQL: two birth dates (DATE) may be one person's: one unknown, equal, one typo apart in
    their digits (``19330122`` / ``19330212``: a transposition across the separator counts as
    one), day and month swapped (``1980-03-07`` / ``1980-07-03``), or at most ``days``
    apart. Mirrored, with ``days`` = :data:`._components.BIRTH_DAYS`, by
    :func:`._components.same_birth`."""
    digits_a, digits_b = f"strftime({ba}, '%Y%m%d')", f"strftime({bb}, '%Y%m%d')"
    return (f"({ba} IS NULL OR {bb} IS NULL OR {ba} = {bb} OR "
            f"abs(date_diff('day', {ba}, {bb})) <= {days} OR "
            f"damerau_levenshtein({digits_a}, {digits_b}) <= 1 OR "
            f"(year({ba}) = year({bb}) AND month({ba}) = day({bb}) AND day({ba}) = month({bb})))")


def _in_list(expr: str, values: list[str]) -> str:
    if not values:
        return "false"
    return f"{expr} IN ({', '.join(q(v.lower()) for v in values)})"


#: Columns :func:`garbage_parts` adds and ``garbage_predicate(..., parts=True)`` reads.
GARBAGE_PARTS = ("_local", "_alnum", "_domain")


def garbage_parts(type_: str = "type", value: str = "value") -> str:
    """SQL select list of the parts of an identifier value the garbage test reads: its
    local part (an e-mail's, else the value), that part's letters and digits, its domain.
    Computed once per value in a subquery, they make :func:`garbage_predicate` (``parts``)
    half as costly as the same test repeating them."""
    local = f"CASE WHEN {type_} = 'email' THEN split_part({value}, '@', 1) ELSE {value} END"
    return (f"lower({local}) AS _local, "
            f"regexp_replace(lower({local}), '[^a-z0-9]', '', 'g') AS _alnum, "
            f"lower(split_part({value}, '@', 2)) AS _domain")


def garbage_predicate(settings: IdentifySettings, type_: str = "type",
                      value: str = "value", parts: bool = False) -> str:
    """SQL that is true for an identifier value that must never be used to join records;
    with ``parts``, over the columns of :func:`garbage_parts` (computed once each)."""
    if parts:
        local, alnum, domain = GARBAGE_PARTS
    else:
        local = (f"lower(CASE WHEN {type_} = 'email' THEN split_part({value}, '@', 1) "
                 f"ELSE {value} END)")
        alnum = f"regexp_replace({local}, '[^a-z0-9]', '', 'g')"
        domain = f"lower(split_part({value}, '@', 2))"
    tail = f"CASE WHEN {type_} = 'phone' THEN right({alnum}, 8) ELSE {alnum} END"
    email_bad = (
        f"({type_} = 'email' AND ({_in_list(domain, settings.garbage_email_domains)} "
        f"OR {domain} LIKE 'example.%' OR {domain} LIKE 'test.%' "
        f"OR {_in_list(local, settings.generic_email_local_parts)}))"
    )
    return (
        f"({value} IS NULL OR length({value}) < {settings.min_length} "
        f"OR {_in_list(f'lower({value})', settings.garbage_values)} "
        f"OR {alnum} = '' OR ltrim({tail}, left({tail}, 1)) = '' "  # one repeated character
        f"OR {email_bad})"
    )


def type_rank(settings: IdentifySettings) -> str:
    """SQL rank of an identifier type: 1 for the strongest; unlisted types after the list."""
    order = settings.identifier_priority
    cases = " ".join(f"WHEN {q(t)} THEN {i + 1}" for i, t in enumerate(order))
    return f"(CASE type {cases} ELSE {len(order) + 1} END)" if order else "1"


def first_name_sql(table: str = "") -> str:
    """SQL of a customer record's normalized first name (else the first word of its full
    name); ``table``: the alias of ``customer_records``, if any."""
    t = f"{table}." if table else ""
    return norm_name(f"coalesce({t}first_name, split_part(trim({t}full_name), ' ', 1))")


def build_records(con: Connection, only: str | None = None) -> None:
    """``_rec``: every customer record (with ``only``, those listed in that table's
    ``record_key``) with an integer index and its discriminators."""
    first = first_name_sql()
    last = norm_name("coalesce(last_name, nullif(trim(substr(trim(full_name), "
                     "length(split_part(trim(full_name), ' ', 1)) + 1)), ''))")
    where = f"WHERE record_key IN (SELECT record_key FROM {only})" if only else ""
    # The index is the row number in record key order: the rows are stored sorted (insertion
    # order kept for this statement) and numbered by their row ids, consecutive in the order
    # stored, in half the time of a window ordered by key (which carries every column).
    with engine_settings(con, preserve_insertion_order=True):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _rec_sorted AS
            SELECT record_key, {first} AS fn, {last} AS ln, birth_date AS bd, ingestion_id,
                   origin
            FROM customer_records {where} ORDER BY record_key
        """)
    low, high, n = con.execute("SELECT min(rowid), max(rowid), count(*) "
                               "FROM _rec_sorted").fetchall()[0]
    idx = "rowid" if not n else f"(rowid - {low})" if high - low + 1 == n else \
        "(row_number() OVER (ORDER BY rowid) - 1)"  # row ids with gaps: numbered again
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rec AS SELECT {idx}::BIGINT AS idx, * "
                "FROM _rec_sorted")
    con.execute("DROP TABLE _rec_sorted")


def _nicknames(con: Connection, settings: IdentifySettings) -> None:
    pairs = {**NICKNAMES, **settings.nicknames}
    rows = ", ".join(f"({q(k)}, {q(v)})" for k, v in sorted(pairs.items())) or "('', '')"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _nick AS
        SELECT {norm_name('nick')} AS nick, {norm_name('name')} AS name
        FROM (VALUES {rows}) t(nick, name)""")


def build_identifier_edges(con: Connection, settings: IdentifySettings,
                           scoped: bool = False) -> int:
    """``_id_edges(idx, type, value, node, rank, guess, nid)``: record → (guarded) value
    node, numbered ``nid`` below the number returned; ``guess`` marks a record without a
    first name put in a shared value's largest group.

    Needs ``_rec``. Values held by a single record are left out: they join nothing. When
    ``_rec`` holds part of the base (``scoped``), a value's records are counted in the whole
    base; the part must hold every record of each value it holds that is held by at most
    ``max_records_per_value`` records; ``_rec_ids`` then holds the part's identifiers (of
    every type, the ignored ones too).
    """
    ignore = _in_list("type", settings.ignore_types)
    _nicknames(con, settings)
    # A record holds a value once: ingestion never stores a (record, type, value) twice.
    source = f"(SELECT record_key, type, value FROM identifiers WHERE NOT ({ignore}))"
    whole = ""
    if scoped:  # values held by more records than the part holds of them: too many
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _rec_ids AS
            SELECT record_key, type, value FROM identifiers
            WHERE record_key IN (SELECT record_key FROM _rec)""")
        source = f"(SELECT record_key, type, value FROM _rec_ids WHERE NOT ({ignore}))"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _value_n AS
            SELECT type, value FROM identifiers
            JOIN (SELECT DISTINCT type, value FROM {source}) v USING (type, value)
            GROUP BY ALL HAVING count(*) > {settings.max_records_per_value}""")
        whole = "AND (type, value) NOT IN (SELECT (type, value) FROM _value_n)"
    # Each joining value numbered (``vid``): the node of a value that is not split.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ids AS
        WITH ids AS (
            SELECT r.idx, i.type, i.value, r.fn, r.bd
            FROM {source} i JOIN _rec r USING (record_key)
        ), stats AS (  -- garbage is a property of the value: tested once per joining value
            SELECT * EXCLUDE ({', '.join(GARBAGE_PARTS)}),
                   (row_number() OVER () - 1)::BIGINT AS vid
            FROM (SELECT *, {garbage_parts()} FROM (
                -- two first names (birth dates) or more: min and max differ
                SELECT type, value, count(*) AS n, min(fn) <> max(fn) AS many_fn,
                       min(bd) <> max(bd) AS many_bd
                FROM ids GROUP BY ALL
                HAVING count(*) BETWEEN 2 AND {settings.max_records_per_value}))
            WHERE NOT {garbage_predicate(settings, parts=True)} {whole}
        )
        SELECT ids.*, s.vid, s.n >= {settings.shared_min_records}
                   AND (coalesce(s.many_fn, false) OR coalesce(s.many_bd, false))
                   AND {_in_list('ids.type', settings.household_types)} AS suspect
        FROM ids JOIN stats s USING (type, value)
    """)
    n_values = int(con.execute("SELECT coalesce(max(vid) + 1, 0) FROM _ids").fetchall()[0][0])
    # Records of a suspect value: which pairs may be one person? Groups of compatible records.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sus AS
        SELECT (row_number() OVER () - 1)::BIGINT AS item, s.*, r.record_key, r.ln
        FROM _ids s JOIN _rec r USING (idx) WHERE s.suspect
    """)
    pairs = con.execute(f"""
        SELECT a.item AS a, b.item AS b
        FROM _sus a JOIN _sus b ON a.type = b.type AND a.value = b.value AND a.idx < b.idx
        WHERE a.fn IS NOT NULL AND b.fn IS NOT NULL
          AND {names_compatible('a.fn', 'b.fn', 'a.ln', 'b.ln')}
          AND {births_compatible('a.bd', 'b.bd', BIRTH_DAYS)}
    """).fetchnumpy()
    n_items = int(con.execute("SELECT count(*) FROM _sus").fetchall()[0][0])
    labels = item_components(n_items, np.asarray(pairs["a"], dtype=np.int64),
                             np.asarray(pairs["b"], dtype=np.int64))
    groups_view = pd.DataFrame({"item": np.arange(n_items, dtype=np.int64), "grp": labels})
    with frame_view(con, "_item_group_view", groups_view):
        rank = type_rank(settings)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sus_edges AS
            WITH g AS (  -- records without a first name are in no group of their own
                SELECT s.*, CASE WHEN s.fn IS NOT NULL THEN v.grp END AS grp
                FROM _sus s JOIN _item_group_view v USING (item)
            ), groups AS (  -- a group of a shared value is named by its smallest record key
                SELECT type, value, grp, min(record_key) AS part, count(*) AS size FROM g
                WHERE grp IS NOT NULL GROUP BY ALL
            ), largest AS (  -- where records without a first name go
                SELECT type, value, arg_max(part, (size, part)) AS part FROM groups GROUP BY ALL
            ), e AS (
                SELECT g.idx, g.type, g.value,
                       g.type || ':' || g.value || '|' || coalesce(p.part, l.part, g.record_key)
                       AS node, {rank} AS rank,
                       g.fn IS NULL AS guess  -- put in the largest group by default
                FROM g LEFT JOIN groups p USING (type, value, grp)
                LEFT JOIN largest l USING (type, value)
            )  -- a split value node that holds a single record joins nothing
            SELECT *, {n_values} + dense_rank() OVER (ORDER BY node) - 1 AS nid FROM e
            QUALIFY count(*) OVER (PARTITION BY node) >= 2
        """)
    # Integer node ids (``nid``) for the components: a value's number, or its group's. A
    # view: most readers want the integers of every edge, and the names of a few.
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _id_edges AS
        SELECT idx, type, value, type || ':' || value AS node, {rank} AS rank,
               false AS guess, vid AS nid
        FROM _ids WHERE NOT suspect
        UNION ALL
        SELECT idx, type, value, node, rank, guess, nid FROM _sus_edges
    """)
    return int(con.execute(f"SELECT coalesce(max(nid) + 1, {n_values}) FROM _sus_edges")
               .fetchall()[0][0])
