"""Connected components of the record ↔ identifier graph, with cardinality guards.

Records and identifier values are the nodes of a bipartite graph; a customer is a connected
component. Components are found for the whole base at once with
:func:`scipy.sparse.csgraph.connected_components` (linear time, millions of edges in a second).
Only the few components that break a guard (two values of an identifier that is unique per
person, more distinct e-mails or birth dates than allowed, or records a probabilistic pair
would not link) are rebuilt edge by edge with a union-find that refuses any edge that would
break it, strongest edges first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date
from itertools import combinations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n_records: int, rec: np.ndarray, node: np.ndarray) -> np.ndarray:
    """Component label of every record and every node (records first, then nodes)."""
    n_nodes = int(node.max()) + 1 if len(node) else 0
    size = n_records + n_nodes
    graph = coo_matrix(
        (np.ones(len(rec), dtype=np.int8), (rec.astype(np.int64), n_records + node)),
        shape=(size, size),
    )
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64)


def item_components(n_items: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each of ``n_items`` items joined by the edges ``a[i]`` — ``b[i]``."""
    if n_items == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_items, n_items))
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64)


#: Birth dates at most this many days apart may be one person's (a day, a month or the year
#: mistyped): two people that close in age with compatible first names are not a household.
BIRTH_DAYS = 366


def same_birth(a: str, b: str) -> bool:
    """Two ISO birth dates may be one person's: equal, one typo apart in their eight digits
    (a substitution or two neighbours transposed), day and month swapped, or at most
    ``BIRTH_DAYS`` days apart (:func:`._edges.births_compatible` with ``BIRTH_DAYS``)."""
    if a == b:
        return True
    da, db = date.fromisoformat(a), date.fromisoformat(b)
    if abs((da - db).days) <= BIRTH_DAYS or (
            da.year == db.year and da.month == db.day and da.day == db.month):
        return True
    sa, sb = da.strftime("%Y%m%d"), db.strftime("%Y%m%d")
    diff = [i for i in range(8) if sa[i] != sb[i]]
    return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                              and sa[diff[0]] == sb[diff[1]] and sa[diff[1]] == sb[diff[0]])


def birth_dates(values: set[str]) -> int:
    """How many people's birth dates ``values`` holds: groups of dates linked by
    :func:`same_birth` (a typo of a date is not another date)."""
    items = sorted(values)
    return len(set(_linked(len(items), [(i, j) for i, j in combinations(range(len(items)), 2)
                                        if same_birth(items[i], items[j])]).tolist()))


def _linked(n_items: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """:func:`item_components` of ``n_items`` items joined by ``pairs``."""
    a = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
    b = np.fromiter((j for _, j in pairs), dtype=np.int64, count=len(pairs))
    return item_components(n_items, a, b)


#: How a capped attribute's values are counted, where distinct values are not distinct things.
COUNTS: dict[str, Callable[[set[str]], int]] = {"bd": birth_dates}


class GuardedUnionFind:
    """Union-find whose roots carry value sets; a union that would break a cap is refused.

    ``caps`` maps an attribute name to the most distinct values one customer may hold
    (1 for identifiers unique per person), counted by :data:`COUNTS` where listed (birth
    dates up to typos). A union is refused when the merged set would hold more values than
    both the cap and each side already held.

    ``cannot`` holds cannot-link constraints (Wagstaff et al. 2001, "Constrained K-means
    clustering with background knowledge", ICML) per field: pairs of records that field
    alone says are two people (birth dates, first names). Each root keeps, per field, its
    records grouped into *people*: records linked by a chain of pairs not cannot-linked. A
    *soft* union (a probabilistic pair) is refused when the merged customer would hold more
    people than each side already held: the edge would bring in another person (two
    namesakes joined through a web account that has no birth date). A record that agrees
    with one record of the other side joins, whatever a deterministic join already put with
    it; a pair whose own veto was weighed is left out of ``cannot`` by the caller.
    """

    def __init__(self, caps: Mapping[str, int],
                 cannot: Mapping[str, set[tuple[int, int]]] | None = None) -> None:
        self.caps = dict(caps)
        self.cannot = {k: v for k, v in (cannot or {}).items() if v}
        self.parent: dict[int, int] = {}
        self.values: dict[int, dict[str, set[str]]] = {}
        self.people: dict[int, dict[str, list[list[int]]]] = {}  # root: field -> people

    def add(self, item: int, values: Mapping[str, set[str]] | None = None,
            known: set[str] | None = None) -> None:
        """Add ``item`` with its capped ``values`` and the ``cannot`` fields it knows."""
        self.parent.setdefault(item, item)
        if values:
            self.values[item] = {k: set(v) for k, v in values.items()}
        fields = [k for k in (known or ()) if k in self.cannot]
        if fields:
            self.people[item] = {k: [[item]] for k in fields}

    def _merge_people(self, key: str, pa: list[list[int]],
                      pb: list[list[int]]) -> list[list[int]]:
        """The people of two roots together: a person of each side are one when two of
        their records are not cannot-linked."""
        pairs = self.cannot[key]
        labels = _linked(len(pa) + len(pb), [
            (i, len(pa) + j) for i, ga in enumerate(pa) for j, gb in enumerate(pb)
            if any((min(r, t), max(r, t)) not in pairs for r in ga for t in gb)])
        merged: dict[int, list[int]] = {}
        for label, group in zip(labels.tolist(), pa + pb, strict=True):
            merged.setdefault(label, []).extend(group)
        return list(merged.values())

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int, *, force: bool = False,
              soft: bool | Collection[str] = False) -> bool:
        """Join the roots of ``a`` and ``b`` unless a cap (or, for a ``soft`` union, a
        cannot-link constraint of the fields ``soft`` lists, or of every field if ``True``)
        forbids it; ``force`` skips every check."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        va, vb = self.values.get(ra, {}), self.values.get(rb, {})
        pa, pb = self.people.get(ra, {}), self.people.get(rb, {})
        people = {**pa, **pb}
        for key in pa.keys() & pb.keys():
            people[key] = self._merge_people(key, pa[key], pb[key])
            checked = soft is True or (not isinstance(soft, bool) and key in soft)
            if checked and not force and len(people[key]) > max(len(pa[key]), len(pb[key])):
                return False
        if not force:
            for key, cap in self.caps.items():
                sa, sb = va.get(key, set()), vb.get(key, set())
                if not (sa and sb) or sb <= sa or sa <= sb:
                    continue
                count = COUNTS.get(key, len)
                if count(sa | sb) > max(cap, count(sa), count(sb)):
                    return False
        if len(va) < len(vb):
            ra, rb, va, vb = rb, ra, vb, va
        self.parent[rb] = ra
        for key, vals in vb.items():
            va.setdefault(key, set()).update(vals)
        if va:
            self.values[ra] = va
        self.values.pop(rb, None)
        self.people.pop(rb, None)
        self.people.pop(ra, None)
        if people:
            self.people[ra] = people
        return True


def guarded_components(
    records: np.ndarray,
    edges: list[tuple[int, int, bool, bool | tuple[str, ...]]],
    values: Mapping[int, Mapping[str, set[str]]],
    caps: Mapping[str, int],
    cannot: Mapping[str, set[tuple[int, int]]] | None = None,
    known: Mapping[int, set[str]] | None = None,
) -> dict[int, int]:
    """Root of every record and node of one component, edges taken in the order given.

    ``edges`` are (record, node, forced, soft: see :meth:`GuardedUnionFind.union`) with
    node ids already offset past the records; ``cannot`` and ``known`` are
    :class:`GuardedUnionFind`'s cannot-link pairs and each record's fields.
    """
    uf = GuardedUnionFind(caps, cannot)
    known = known or {}
    for r in records.tolist():
        uf.add(int(r), values.get(int(r)), known.get(int(r)))
    for r, n, forced, soft in edges:
        uf.add(n)
        uf.union(r, n, force=forced, soft=soft)
    return {item: uf.find(item) for item in list(uf.parent)}
