"""Which pairs of profile records are compared: the blocking keys (64-bit hashes of two or
three fields, a contact value, the sorted names), the cut of blocks too large to pair, the
blocking rules handed to Splink, and the candidate pairs made in SQL, each pair once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from onetoone.store import frame_view, scratch

#: Candidate pairs agree on one of these keys: two fields (any two strong ones), a contact
#: value, or three fields where the two-field block is too large (common names at scale).
#: No first name + postcode: at 1 M demo people it made 4 % of the pairs and alone found 16
#: of 134,289 true pairs (first name + address, the names + postcode, birth dates find them).
BLOCKS: tuple[tuple[str, ...], ...] = (
    ("first_name", "surname"), ("surname", "birth_date"), ("first_name", "birth_date"),
    ("birth_date", "postcode"), ("surname", "postcode"), ("surname", "city"),
    ("birth_date", "city"), ("address", "postcode"), ("first_name", "address"), ("email",),
    ("phone",), ("first_name", "surname", "postcode"), ("first_name", "surname", "city"),
    ("first_name", "birth_date", "postcode"))


def _key_specs(columns: list[str]) -> list[tuple[str, ...]]:
    """The fields of each blocking key of the compared ``columns``, in key order; the last,
    ``("first_name", "surname", "swapped")``, is both names sorted (a swap agrees on it)."""
    specs: list[tuple[str, ...]] = [b for b in BLOCKS if all(c in columns for c in b)]
    specs += [(c,) for c in columns if c.startswith("x_")]
    if "first_name" in columns and "surname" in columns:
        specs.append(("first_name", "surname", "swapped"))
    return specs


def block_key_sql(columns: list[str]) -> tuple[list[str], str, list[str]]:
    """The blocking key columns of the compared ``columns``: their names, the SQL that
    computes them (see :func:`raw_block_keys`) and the fields it reads."""
    specs = _key_specs(columns)
    exprs = ["least(first_name, surname) || '|' || greatest(first_name, surname)"
             if spec[-1] == "swapped" else " || '|' || ".join(f"{c}::VARCHAR" for c in spec)
             for spec in specs]
    names = [f"b_{i}" for i in range(len(exprs))]
    hashed = ", ".join(f"CASE WHEN ({e}) IS NOT NULL THEN (hash({e}) >> 1)::BIGINT END AS {n}"
                       for e, n in zip(exprs, names, strict=True))
    fields = [c for spec in specs for c in spec if c != "swapped"]
    return names, hashed, list(dict.fromkeys(fields))


def coarser_keys(columns: list[str]) -> dict[str, list[str]]:
    """Blocking key → the keys it refines: records that agree on it agree on each of those
    (first name + surname + postcode on first name + surname, on surname + postcode and on
    the sorted names). Where one of those blocks is kept, it already pairs the records."""
    specs = _key_specs(columns)
    coarser: dict[str, list[str]] = {}
    for i, spec in enumerate(specs):
        if spec[-1] == "swapped":
            continue
        below = [f"b_{j}" for j, other in enumerate(specs) if j != i and (
            {"first_name", "surname"} <= set(spec) if other[-1] == "swapped"
            else set(other) < set(spec))]
        if below:
            coarser[f"b_{i}"] = below
    return coarser


def raw_block_keys(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Add one blocking key column (``b_<n>``) per rule; returns the frame and their names.

    A key is a 64-bit hash of the rule's fields (an integer join is cheaper than a string
    one; two blocks that collide only add candidate pairs, each scored on its own), NULL where
    a field is missing. Names swapped between first name and surname are one more key (both
    names, sorted). The keys are those of the whole block: :func:`cut_blocks` drops the large
    ones.
    """
    names, hashed, fields = block_key_sql(columns)
    if not names:
        return frame, names
    con = scratch()
    with frame_view(con, "_frame",
                    frame[fields].assign(_row=np.arange(len(frame), dtype=np.int64))):
        keys = con.execute(f"SELECT {hashed} FROM _frame ORDER BY _row").df()
    con.close()
    keys.index = frame.index
    return frame.drop(columns=[n for n in names if n in frame.columns]).assign(
        **{n: keys[n] for n in names}), names


def kept_keys_sql(names: list[str], table: str, max_block_size: int) -> str:
    """SQL of the key columns ``names`` of ``table``, each NULL where its block in
    ``table`` holds more than ``max_block_size`` records. Each key is looked up among the
    few large blocks, not among every small one (half the time at 2 M records)."""
    return ", ".join(f"CASE WHEN {n} NOT IN (SELECT {n} FROM {table} WHERE {n} IS NOT NULL "
                     f"GROUP BY {n} HAVING count(*) > {max_block_size}) THEN {n} END AS {n}"
                     for n in names)


def cut_blocks(frame: pd.DataFrame, names: list[str], max_block_size: int) -> pd.DataFrame:
    """The keys ``names`` set to NULL where their block holds more than ``max_block_size``
    records: such a block agrees only on common values (``marie`` + ``martin`` in one city)
    and would make the candidate pairs grow with the square of the base."""
    if not names:
        return frame
    con = scratch()
    with frame_view(con, "_keys", frame[names].assign(_row=np.arange(len(frame),
                                                                     dtype=np.int64))):
        keys = con.execute(f"SELECT {kept_keys_sql(names, '_keys', max_block_size)} "
                           "FROM _keys ORDER BY _row").df()
    con.close()
    keys.index = frame.index
    return frame.assign(**{n: keys[n] for n in names})


def block_keys(frame: pd.DataFrame, columns: list[str],
               max_block_size: int) -> tuple[pd.DataFrame, list[str]]:
    """:func:`raw_block_keys`, then :func:`cut_blocks`."""
    frame, names = raw_block_keys(frame, columns)
    return cut_blocks(frame, names, max_block_size), names


def blocking_sql(keys: list[str], groups: bool = False, new: bool = False) -> list[str]:
    """One rule per key column; with ``groups``, never two records of one ``grp`` (already
    joined deterministically, so their pair would be dropped anyway); with ``new``, only
    pairs that hold a record flagged ``is_new`` (an incremental run)."""
    return [f"l.{k} = r.{k}{_pair_filter(groups, new)}" for k in keys]


def _pair_filter(groups: bool, new: bool) -> str:
    """SQL added to a candidate pair's join: two groups (``grp``), a new record in it."""
    return (" AND l.grp <> r.grp" if groups else "") + \
        (" AND (l.is_new OR r.is_new)" if new else "")


def candidate_pairs_sql(keys: list[str], table: str, groups: bool = False,
                        new: bool = False, coarser: dict[str, list[str]] | None = None) -> str:
    """SQL of the candidate pairs of ``table`` (integer ``unique_id``, blocking keys
    ``keys``) as Splink scores them (``match_key``: a rule that makes the pair, ``join_key_l``
    < ``join_key_r``): the pairs :func:`blocking_sql`'s rules make, each once. A key is
    left out where one it refines (``coarser``, :func:`coarser_keys`) is kept: that block
    already holds its pairs, and half the pairs the rules made were made twice. With
    ``new``, each new record (``r``) is joined to the records of its blocks, not every
    record to every other one of its blocks."""
    kept = [c for c, on in (("grp", groups), ("is_new", new)) if on]
    refined = ", ".join(
        f"CASE WHEN coalesce({', '.join(coarser[k])}) IS NULL THEN {k} END AS {k}"
        if coarser and k in coarser else k for k in keys)
    other = _pair_filter(groups, False)
    if new:  # a pair of two new records once: the smaller is l
        pair = "least(l.unique_id, r.unique_id) AS a, greatest(l.unique_id, r.unique_id) AS b"
        which = f"r.is_new AND (NOT l.is_new OR l.unique_id < r.unique_id){other}"
    else:
        pair, which = "l.unique_id AS a, r.unique_id AS b", f"true{other}"
    joins = " UNION ALL ".join(
        f"SELECT {i} AS rule, {pair} FROM k l JOIN k r ON l.{k} = r.{k}"
        f"{'' if new else ' AND l.unique_id < r.unique_id'} WHERE {which}"
        for i, k in enumerate(keys))
    return f"""
        WITH k AS (SELECT {', '.join(['unique_id', *kept])}, {refined} FROM {table})
        SELECT min(rule)::VARCHAR AS match_key, a AS join_key_l, b AS join_key_r
        FROM ({joins}) GROUP BY a, b"""
