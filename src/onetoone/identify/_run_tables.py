"""The working tables of one identify run (DuckDB temporary tables and views, gone with the
connection), by the role they play between the run's steps: what each holds, which step
writes it and which read it. :class:`.resolver.IdentityResolver`'s steps take the tables they
read as arguments and return those they write, from :data:`TABLES`. The names are fixed: the
helpers the run calls read or write them by these names (:func:`._edges.build_records` and
:func:`._edges.build_identifier_edges`, :func:`._probabilistic.match_pairs` and
:func:`._probabilistic.score_new_pairs`), so there is one instance. Tables a step makes and
reads alone (``_delta``, ``_attr``, ``_bad_rec``, registered ``*_view`` frames...) are named
in that step only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunTables:
    """Names of the tables one identify run passes from step to step (see the module)."""

    #: ``record_key`` of the records loaded since the last run or never linked. Written by
    #: ``_changes``; read by ``_scope``, the run (``new``) and ``score_new_pairs``.
    new_keys: str = "_new_keys"
    #: ``record_key`` of the linked records no longer in the base. Written by ``_changes``;
    #: read by ``_scope``, ``_write_graph``, ``_write_links`` and ``score_new_pairs``.
    gone: str = "_gone"
    #: ``record_key`` of the records an incremental run starts from: new, gone, touched, and
    #: those sharing a value (held by few enough records) or a scored pair with a new one.
    #: Written by ``_scope``; read by ``_affected``.
    seed: str = "_seed"
    #: ``record_key`` of the records an incremental run rebuilds: whole components of
    #: ``identity_graph`` that the seed reaches. Written by ``_scope``, grown by
    #: ``_widen_scope``; read by ``build_records``.
    scope: str = "_scope"
    #: The run's records (every one, or the scope's), numbered in record key order: ``idx``,
    #: ``record_key``, ``fn``, ``ln``, ``bd``, ``ingestion_id``, ``origin``. Written by
    #: ``build_records``; read by almost every step and by the probabilistic step.
    rec: str = "_rec"
    #: ``idx``, ``record_key`` of the run's new records. Written by the run; read by
    #: ``match_pairs`` (an incremental run replaces their review pairs).
    new: str = "_new"
    #: The identifiers of the scope's records (``record_key``, ``type``, ``value``), in an
    #: incremental run. Written by ``build_identifier_edges``; read by ``_apply_guards``.
    rec_ids: str = "_rec_ids"
    #: Each record's joining identifier values: ``idx``, ``type``, ``value``, ``fn``, ``bd``,
    #: ``vid`` (the value's number), ``suspect`` (a shared value split into groups). Written
    #: by ``build_identifier_edges``; read by ``_write_graph``.
    value_ids: str = "_ids"
    #: View of the record → identifier value edges: ``idx``, ``type``, ``value``, ``node``,
    #: ``rank``, ``guess``, ``nid``. Written by ``build_identifier_edges``; read by
    #: ``_all_edges`` and ``match_pairs``.
    id_edges: str = "_id_edges"
    #: ``idx`` of the records a person set apart. Written by ``_all_edges``; read by
    #: ``_write_graph``.
    sep: str = "_sep"
    #: The manual links and probabilistic pairs as edges (columns of :attr:`edges`). Written
    #: by ``_all_edges``; read by ``_cannot_link``.
    other_edges: str = "_other_edges"
    #: View of every edge: ``idx``, ``node``, ``method``, ``rank``, ``prob``, ``forced``,
    #: ``soft``, ``nid``. Written by ``_all_edges``; read by ``_components``,
    #: ``_cannot_link``, ``_apply_guards`` and ``_write_links``.
    edges: str = "_edges"
    #: Registered frame of each record's component before the guards (``idx``, ``comp``),
    #: while ``_apply_guards`` runs; read by ``_cannot_link``.
    raw_labels: str = "_lab_view"
    #: Cannot-link pairs: ``a``, ``b`` (``idx``), ``field`` (``bd`` or ``fn``). Written by
    #: ``_cannot_link``; read by ``_apply_guards``.
    cannot_link: str = "_cl"
    #: Each record's customer component after the guards: ``idx``, ``comp``. Written by
    #: ``_write_labels``; read by ``_affected``, ``_assign_ids`` and ``_write_links``.
    comp: str = "_comp"
    #: Each value or pair node's component: ``nid``, ``comp``. Written by ``_write_labels``;
    #: read by ``_write_links``.
    node_comp: str = "_node_comp"
    #: The run's records' links before it: ``idx``, ``record_key``, ``customer_id``,
    #: ``linked_at``. Written by ``_affected``; read by ``_assign_ids`` and ``_write_links``.
    old: str = "_old"
    #: ``comp`` of the components an incremental run rewrites. Written by ``_affected``;
    #: read by ``_assign_ids`` and ``_write_links`` (a full run rewrites every one).
    aff: str = "_aff"
    #: Each rewritten component's customer id: ``comp``, ``customer_id``. Written by
    #: ``_assign_ids``; read by ``_write_links``.
    cid: str = "_cid"
    #: ``customer_id`` of the customers whose golden records are rebuilt. Written by
    #: ``_assign_ids``; read by ``rebuild_golden`` (incremental run).
    affected_ids: str = "_affected_ids"
    #: The new links of the rewritten records: ``record_key``, ``customer_id``, ``method``,
    #: ``prob``, ``old_id``, ``old_linked_at``. Written by ``_write_links``; read by
    #: ``rebuild_golden``.
    links_new: str = "_links_new"
    #: Records whose customer changed (``customer_id`` NULL: gone): ``record_key``,
    #: ``customer_id``. Written by ``_write_links``; read by ``_update_events``.
    relinked: str = "_relinked"
    #: ``customer_id`` of the customers whose links an incremental run rewrote (some may be
    #: left without records). Written by ``_write_links``; read by the run.
    unlinked: str = "_unlinked"


#: The run's tables.
TABLES = RunTables()
