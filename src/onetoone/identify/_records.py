"""The profile records as Splink sees them: normalized compared fields, one row per record
(read from ``customer_records`` and ``identifiers``), the deterministic group of each
(``_groups``), and the stored match input (:data:`INPUT_TABLE`) with its raw blocking keys,
which a full run writes and an incremental run updates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from onetoone.identify._blocking import block_key_sql, kept_keys_sql
from onetoone.identify._comparisons import FIELDS, extra_column
from onetoone.identify._components import components
from onetoone.identify._edges import norm_name
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import ident, q
from onetoone.store import Store, drop_frame, show_frame, table_columns

#: The profile records as matched, with their blocking keys before the block-size cut
#: (:func:`raw_block_keys`), kept between runs: an incremental run reads, normalizes and keys
#: only its new records, and takes the candidates and term frequencies from here. Its
#: columns follow the compared fields, so it is made by the run, not declared in the schema.
INPUT_TABLE = "identity_match_input"


def _input_sql(settings: IdentifySettings | None = None, only: str | None = None,
               ordered: bool = True) -> str:
    """SQL of the profile records as Splink sees them: normalized fields, one row per
    record, in record key order (unless not ``ordered``); with ``only``, those of the
    records listed in that table (``record_key``)."""
    text = "nullif(lower(strip_accents(trim({}::VARCHAR))), '')"
    select = {
        "first_name": norm_name("r.first_name"),
        "surname": norm_name("r.last_name"),
        "birth_date": "strftime(r.birth_date, '%Y-%m-%d')",
        "postcode": text.format("r.postcode"),
        "city": text.format("r.city"),
        "address": text.format("r.address"),
        "email": text.format("r.email"),
        "phone": text.format("r.phone"),
    }
    joins = []
    for i, key in enumerate(settings.compare if settings else []):
        joins.append(f"LEFT JOIN (SELECT record_key, min(value) AS v FROM identifiers "
                     f"WHERE type = {q(key)} GROUP BY ALL) x{i} USING (record_key)")
        select[extra_column(key)] = (f"coalesce(x{i}.v, "
                                     f"nullif(trim(r.attributes->>{q(key)}), ''))")
    columns = ", ".join(f"{expr} AS {name}" for name, expr in select.items())
    restrict = f"AND r.record_key IN (SELECT record_key FROM {only})" if only else ""
    return f"""
        SELECT *, CASE WHEN first_name IS NOT NULL AND surname IS NOT NULL
                       THEN first_name || ' ' || surname END AS name_concat
        FROM (SELECT r.record_key AS unique_id, {columns}
              FROM customer_records r {' '.join(joins)}
              WHERE r.origin = 'profile'
                AND coalesce(r.first_name, r.last_name, r.full_name, r.birth_date::VARCHAR,
                             r.email) IS NOT NULL
                {restrict})
        {'ORDER BY unique_id' if ordered else ''}"""


def _input(store: Store, settings: IdentifySettings | None = None,
           only: str | None = None) -> pd.DataFrame:
    """Profile records as Splink sees them (:func:`_input_sql`)."""
    return store.execute(_input_sql(settings, only)).df()


def _deterministic_groups(store: Store) -> None:
    """``_groups(unique_id, group)``: profile record (the only ones compared) →
    deterministic component, so pairs already joined are not reported."""
    edges = store.execute("SELECT idx, nid FROM _id_edges").fetchnumpy()
    n = int(store.scalar("SELECT count(*) FROM _rec"))
    labels = components(n, np.asarray(edges["idx"], dtype=np.int64),
                        np.asarray(edges["nid"], dtype=np.int64))
    show_frame(store.con, "_groups_view", pd.DataFrame({"idx": np.arange(n, dtype=np.int64),
                                                     "group": labels[:n]}))
    store.execute("""CREATE OR REPLACE TEMP TABLE _groups AS
                     SELECT r.record_key AS unique_id, g."group" FROM _groups_view g
                     JOIN _rec r USING (idx) WHERE r.origin = 'profile'""")
    drop_frame(store.con, "_groups_view")


def _stored_input(store: Store, settings: IdentifySettings) -> tuple[pa.Table, list[str]]:
    """Every profile record as Splink sees it, stored with its blocking keys (before the
    block-size cut) in :data:`INPUT_TABLE`; returned with the keys cut and each record's
    deterministic group (``grp``, from ``_groups``), and the compared columns that hold a
    value. Made in the store, in SQL."""
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _input_all AS "
                f"{_input_sql(settings, ordered=False)}")  # read in order below
    names = [c for c in table_columns(con, "_input_all")
             if c in FIELDS.values() or c.startswith("x_")]
    counts = con.execute("SELECT " + ", ".join(f"count({ident(c)})" for c in names)
                         + " FROM _input_all").fetchall()[0] if names else ()
    columns = [c for c, n in zip(names, counts, strict=True) if n]
    keys, hashed, _fields = block_key_sql(columns)
    con.execute(f"CREATE OR REPLACE TABLE {INPUT_TABLE} AS SELECT *{', ' + hashed if keys else ''} "
                "FROM _input_all")
    con.execute("DROP TABLE _input_all")
    kept = (f" EXCLUDE ({', '.join(keys)}), "
            f"{kept_keys_sql(keys, INPUT_TABLE, settings.max_block_size)}" if keys else "")
    frame = con.sql(f"""
        SELECT i.*{kept}, coalesce(g."group", -1) AS grp
        FROM {INPUT_TABLE} i LEFT JOIN _groups g USING (unique_id)
        ORDER BY unique_id""").to_arrow_table()
    return frame, columns
