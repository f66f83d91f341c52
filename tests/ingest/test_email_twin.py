"""The service's e-mail normalization in Python is ingestion's SQL, value for value."""

from __future__ import annotations

import itertools

from onetoone.ingest._normalize import Normalizer
from onetoone.ingest.settings import SourceConfig
from onetoone.settings import WorkspaceSettings
from onetoone.store import scratch

PIECES = ["a", "Z", "@", ".", " ", "\t", "\r", "\n", "\f", "\v", "-", "+", "fr", "é", "İ",
          "\u00a0", "_", "9", "@@"]
SEEDS = ["Marie@Exemple.FR", " marie@exemple.fr ", "marie@exemple.f", "marie@exemple",
         "@exemple.fr", "marie@.fr", "marie@exemple..fr", "ma rie@exemple.fr", "MARIE@EXEMPLE.FR\t",
         "marie@exemple.fr\f", "marie\f@exemple.fr", "marie@@exemple.fr", "", " ", "a@b.cd",
         "a@b.c", "a.b@c.d.ef", "élodie@exemple.fr", "marie@exemple.fr\v", "x@y.\tzz"]


def test_every_value_is_normalized_as_the_sql_does() -> None:
    normalizer = Normalizer(SourceConfig.model_validate({"entity": "customers", "path": "api"}),
                            WorkspaceSettings())
    values = list(SEEDS)
    for n in (1, 2, 3):
        values += ["".join(p) for p in itertools.product(PIECES, repeat=n)]
    values += [f"{a}@{b}.{c}" for a, b, c in itertools.product(PIECES[:8], repeat=3)]
    con = scratch()
    expr = normalizer.identifier("v", "email")
    sql = dict(con.execute(f"SELECT v, {expr} FROM (SELECT unnest(?::VARCHAR[]) AS v)",
                           [values]).fetchall())
    judged = 0
    for value in values:
        mine = Normalizer.email_value(value)
        if mine is False:
            assert not value.isascii()
            continue
        judged += 1
        assert mine == sql[value], repr(value)
    assert judged > 4000
