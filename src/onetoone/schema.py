"""The canonical data model, in one place.

Every table of the workspace is declared here with its columns, SQL types and meaning. The
store creates the tables from these declarations, ingestion validates source rows against the
entity fields, and ``docs/data-model.md`` is rendered from them (a test keeps it in sync), so the
documented contract and the database cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSION = 8


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    description: str


@dataclass(frozen=True)
class Field:
    """A canonical field that a source configuration can map a column to.

    ``kind`` drives parsing and normalization: id, text, name, email, phone, handle, date,
    timestamp, money, number, boolean, country, language, code.
    """

    name: str
    kind: str
    description: str
    required: bool = False

    @property
    def sql_type(self) -> str:
        return _KIND_SQL[self.kind]


_KIND_SQL = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "name": "VARCHAR",
    "email": "VARCHAR",
    "phone": "VARCHAR",
    "handle": "VARCHAR",
    "code": "VARCHAR",
    "country": "VARCHAR",
    "language": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "money": "DECIMAL(18,2)",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
}

#: Kinds whose unparseable values quarantine the row (a wrong date or amount makes a row
#: unusable). Values of the other checked kinds (e-mail, phone, country, language) that fail
#: validation leave the field empty and are kept in ``attributes._invalid``: a customer is not
#: dropped for a mistyped phone number.
STRICT_KINDS = frozenset({"date", "timestamp", "money", "number", "boolean"})


@dataclass(frozen=True)
class Entity:
    """What a source can load: its target table and the fields it maps."""

    name: str
    table: str
    fields: tuple[Field, ...]
    description: str
    is_event: bool = True

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def has_source_id(self) -> bool:
        return self.field("source_id") is not None


def _f(name: str, kind: str, description: str, required: bool = False) -> Field:
    return Field(name, kind, description, required)


_CUSTOMER_REF = _f(
    "customer_source_id",
    "id",
    "Id of the customer in the customers source named by the source's `customer_source`.",
)

ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity(
            "customers",
            "customer_records",
            (
                _f("source_id", "id", "The customer's id in the source system.", True),
                _f("first_name", "name", "First name, whitespace collapsed."),
                _f("last_name", "name", "Last name, whitespace collapsed."),
                _f("full_name", "name", "Full name when the source has no separate parts."),
                _f("email", "email", "E-mail, trimmed and lower-cased; also an identifier."),
                _f("phone", "phone", "Phone in E.164 (+33612345678); also an identifier."),
                _f("birth_date", "date", "Date of birth."),
                _f("gender", "code", "Gender or civility as given, lower-cased."),
                _f("address", "text", "Street address."),
                _f("postcode", "code", "Postal code, spaces removed, upper-cased."),
                _f("city", "name", "City."),
                _f("region", "text", "Region or state."),
                _f("country", "country", "ISO 3166-1 alpha-2 country code (FR)."),
                _f("language", "language", "ISO 639-1 language code (fr)."),
                _f("created_at", "timestamp", "When the customer was created in the source (UTC)."),
                _f("updated_at", "timestamp", "When the source last changed the record (UTC)."),
            ),
            "Profile rows from every customers source.",
            is_event=False,
        ),
        Entity(
            "transactions",
            "transactions",
            (
                _f("source_id", "id", "Transaction (order, ticket) id in the source; without "
                   "one, rows are keyed by a fingerprint of their values."),
                _CUSTOMER_REF,
                _f("occurred_at", "timestamp", "When the purchase happened (UTC).", True),
                _f("amount", "money", "Total amount; negative for returns and refunds.", True),
                _f("currency", "code", "ISO 4217 currency code, upper-cased."),
                _f("channel", "code", "Sales channel (store, web, app, phone), lower-cased."),
                _f("store_id", "id", "Store or point of sale."),
                _f("status", "code", "Status as given (paid, cancelled, returned), lower-cased."),
            ),
            "Purchases, returns and cancellations.",
        ),
        Entity(
            "transaction_items",
            "transaction_items",
            (
                _f("transaction_id", "id", "Source id of the transaction (same source system).",
                   True),
                _f("product_id", "id", "Product id (the products source's `source_id`).", True),
                _f("quantity", "number", "Quantity; negative for returned lines."),
                _f("unit_price", "money", "Price of one unit."),
            ),
            "Lines of transactions.",
            is_event=False,
        ),
        Entity(
            "products",
            "products",
            (
                _f("source_id", "id", "Product id (SKU).", True),
                _f("name", "text", "Product name."),
                _f("category", "text", "Category."),
                _f("brand", "text", "Brand."),
                _f("price", "money", "List price."),
                _f("margin", "number", "Gross margin as a fraction of the price (0.35 = 35 %)."),
            ),
            "The product catalogue.",
            is_event=False,
        ),
        Entity(
            "interactions",
            "interactions",
            (
                _f("source_id", "id", "Event id in the source."),
                _CUSTOMER_REF,
                _f("occurred_at", "timestamp", "When it happened (UTC).", True),
                _f("channel", "code", "email, sms, web, app, phone, store, chat, social..."),
                _f("type", "code", "sent, open, click, page_view, call, complaint..."),
                _f("direction", "code", "inbound (from the customer) or outbound (to them)."),
                _f("campaign_id", "id", "Campaign that caused it."),
                _f("decision_id", "id", "Decision that caused it."),
                _f("text", "text", "Free text (message, ticket, note)."),
            ),
            "Every contact and event, any channel and direction.",
        ),
        Entity(
            "consents",
            "consents",
            (
                _f("source_id", "id", "Id of the consent change in the source."),
                _CUSTOMER_REF,
                _f("channel", "code", "email, sms, phone, post, push, ads...", True),
                _f("purpose", "code", "marketing, profiling, service... (default marketing)."),
                _f("granted", "boolean", "True when granted, false when withdrawn.", True),
                _f("occurred_at", "timestamp", "When the customer gave or withdrew it (UTC).",
                   True),
            ),
            "Consent given or withdrawn, per channel and purpose, with its history.",
        ),
        Entity(
            "contracts",
            "contracts",
            (
                _f("source_id", "id", "Contract or subscription id.", True),
                _CUSTOMER_REF,
                _f("plan", "text", "Plan or product subscribed."),
                _f("started_at", "timestamp", "Start (UTC).", True),
                _f("ended_at", "timestamp", "End or cancellation (UTC); empty while active."),
                _f("amount", "money", "Recurring amount."),
            ),
            "Subscriptions and contracts (contractual businesses).",
        ),
        Entity(
            "social_posts",
            "social_posts",
            (
                _f("source_id", "id", "Post id on the platform.", True),
                _f("platform", "code", "instagram, twitter, facebook, tiktok, review site..."),
                _f("handle", "handle", "Author's handle, lower-cased, without '@'."),
                _f("occurred_at", "timestamp", "When it was posted (UTC).", True),
                _f("text", "text", "What was said."),
                _f("language", "language", "ISO 639-1 language code."),
            ),
            "Public posts and reviews; linked to customers through handles.",
        ),
        Entity(
            "feedback",
            "feedback",
            (
                _f("source_id", "id", "Answer, review or idea id."),
                _CUSTOMER_REF,
                _f("occurred_at", "timestamp", "When it was given (UTC).", True),
                _f("kind", "code", "nps, csat, review, idea, vote...", True),
                _f("score", "number", "Score (0-10 for NPS)."),
                _f("text", "text", "Comment."),
            ),
            "Surveys, reviews, ideas and votes.",
        ),
    )
}

_LINEAGE = (
    Column("attributes", "JSON", "Every source column not mapped to a field, by its source name; "
           "`_invalid` holds values that failed validation."),
    Column("ingestion_id", "BIGINT", "The load that wrote the row (`ingestions`)."),
    Column("source_row", "BIGINT", "Record number in the source file (1 = first data row)."),
    Column("row_hash", "UBIGINT", "Hash of the row's source values, for idempotent re-loads."),
)
_EVENT_CUSTOMER = (
    Column("customer_record_key", "VARCHAR", "The customer record the row refers to (see "
           "`customer_records`); empty for anonymous rows."),
    Column("customer_id", "VARCHAR", "The resolved customer (set by identify)."),
)


def _entity_table(entity: Entity) -> tuple[Column, ...]:
    head = (
        Column("record_key", "VARCHAR", "Unique key: source + ':' + source id (or a row "
               "fingerprint when the source has no id)."),
        Column("source", "VARCHAR", "Name of the source in `onetoone.toml`."),
    )
    fields = tuple(Column(f.name, f.sql_type, f.description) for f in entity.fields)
    if entity.name == "customers":
        extra: tuple[Column, ...] = (
            Column("origin", "VARCHAR", "`profile` for a row read from a customers source; "
                   "`reference` for a customer known only because an event named it."),
        )
    elif entity.is_event:
        extra = _EVENT_CUSTOMER
        if entity.name in ("interactions", "transactions"):
            extra = (*extra, Column("event_id", "VARCHAR", "Id of the event sent to the API."))
    else:
        extra = ()
    tail: tuple[Column, ...] = ()
    if entity.name == "consents":  # last: added by version 5
        tail = (Column("received_at", "TIMESTAMP", "When onetoone received the change through "
                       "its API (UTC); changes rank by it, a source's rows by `occurred_at`."),)
    return (*head, *fields, *extra, *_LINEAGE, *tail)


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    def ddl(self) -> str:
        cols = ",\n  ".join(f'"{c.name}" {c.sql_type}' for c in self.columns)
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n  {cols}\n)'


def _c(name: str, sql_type: str, description: str) -> Column:
    return Column(name, sql_type, description)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "ingestions",
            "One row per file load.",
            (
                _c("ingestion_id", "BIGINT", "Id of the load."),
                _c("source", "VARCHAR", "Source name."),
                _c("entity", "VARCHAR", "Entity loaded."),
                _c("path", "VARCHAR", "File read."),
                _c("file_hash", "VARCHAR", "SHA-256 of the file's bytes."),
                _c("file_size", "BIGINT", "Size in bytes."),
                _c("encoding", "VARCHAR", "Encoding the file was read with."),
                _c("started_at", "TIMESTAMP", "When the load started (UTC)."),
                _c("finished_at", "TIMESTAMP", "When it was committed (UTC)."),
                _c("status", "VARCHAR", "`loaded`, or `unchanged` when the same file was "
                   "already loaded (nothing read)."),
                _c("rows_read", "BIGINT", "Records read = rows_loaded + rows_quarantined."),
                _c("rows_loaded", "BIGINT", "Records accepted (new, changed or already known)."),
                _c("rows_quarantined", "BIGINT", "Records rejected into `quarantine`."),
                _c("rows_new", "BIGINT", "Accepted records not seen before."),
                _c("rows_changed", "BIGINT", "Accepted records that replaced an older version."),
                _c("rows_unchanged", "BIGINT", "Accepted records identical to what was loaded."),
                _c("values_invalid", "BIGINT", "Soft values (e-mail, phone, country) that failed "
                   "validation and were moved to `attributes._invalid`."),
            ),
        ),
        Table(
            "quarantine",
            "Every rejected source row with its reason; nothing is dropped silently.",
            (
                _c("ingestion_id", "BIGINT", "The load that rejected it."),
                _c("source", "VARCHAR", "Source name."),
                _c("path", "VARCHAR", "File."),
                _c("row_number", "BIGINT", "Record number (1 = first data row); for a line the "
                   "parser could not split, the line number in the file."),
                _c("reason", "VARCHAR", "Why, in words: \"birth_date '31/02/1980' is not a "
                   "date\"."),
                _c("raw", "VARCHAR", "The row as read: JSON of its columns, or the raw line."),
                _c("row_hash", "UBIGINT", "Fingerprint, so a re-load does not quarantine twice."),
            ),
        ),
        *(
            Table(e.table, e.description, _entity_table(e))
            for e in ENTITIES.values()
        ),
        Table(
            "identifiers",
            "Strong identifiers carried by customer records, normalized, for stitching.",
            (
                _c("record_key", "VARCHAR", "The customer record (`customer_records`)."),
                _c("type", "VARCHAR", "email, phone, loyalty_card, customer_number, "
                   "social_handle, device_id or any type a source declares."),
                _c("value", "VARCHAR", "Normalized value."),
                _c("source", "VARCHAR", "Source that carried it."),
                _c("ingestion_id", "BIGINT", "Load that wrote it."),
            ),
        ),
        Table(
            "customer_links",
            "Which customer each record belongs to, and why.",
            (
                _c("record_key", "VARCHAR", "The customer record."),
                _c("customer_id", "VARCHAR", "The customer it belongs to."),
                _c("method", "VARCHAR", "deterministic:<identifier type>, probabilistic, "
                   "manual or singleton."),
                _c("match_probability", "DOUBLE", "Probability of the link (1 for "
                   "deterministic)."),
                _c("linked_at", "TIMESTAMP", "When the link was made (UTC)."),
            ),
        ),
        Table(
            "customers",
            "One golden record per customer.",
            (
                _c("customer_id", "VARCHAR", "Stable customer id."),
                *(
                    _c(f.name, f.sql_type, f.description)
                    for f in ENTITIES["customers"].fields
                    if f.name != "source_id"
                ),
                _c("record_count", "INTEGER", "Number of source records joined."),
                _c("sources", "VARCHAR[]", "Sources the customer appears in."),
                _c("field_sources", "JSON", "For each field, the record its value came from."),
                _c("first_seen_at", "TIMESTAMP", "Earliest date known for the customer (UTC)."),
                _c("resolved_at", "TIMESTAMP", "When the golden record was last rebuilt (UTC)."),
            ),
        ),
        Table(
            "customer_ids",
            "Every customer id ever given, so that ids persist across runs (the older survives).",
            (
                _c("customer_id", "VARCHAR", "Customer id."),
                _c("created_at", "TIMESTAMP", "When the id was first given (UTC)."),
                _c("retired_at", "TIMESTAMP", "When a merge retired it (UTC); empty while "
                   "in use."),
                _c("merged_into", "VARCHAR", "The customer that absorbed it."),
            ),
        ),
        Table(
            "identity_events",
            "Audit trail of identity changes: merges, splits, manual decisions.",
            (
                _c("event", "VARCHAR", "merge, split, manual_merge, manual_unmerge, "
                   "review_accepted, review_rejected."),
                _c("customer_id", "VARCHAR", "The customer that survives or is split."),
                _c("other_customer_id", "VARCHAR", "The customer absorbed, or split off."),
                _c("reason", "VARCHAR", "Why, in words."),
                _c("at", "TIMESTAMP", "When (UTC)."),
            ),
        ),
        Table(
            "identity_overrides",
            "Manual decisions that every later identify run respects.",
            (
                _c("kind", "VARCHAR", "`link` (these records are one customer) or `separate` "
                   "(this record stands alone)."),
                _c("record_key", "VARCHAR", "A record."),
                _c("other_record_key", "VARCHAR", "The record it is linked to (link only)."),
                _c("reason", "VARCHAR", "Why, as given by the person."),
                _c("created_at", "TIMESTAMP", "When (UTC)."),
            ),
        ),
        Table(
            "identity_review",
            "Pairs of records found by probabilistic matching, with their decision.",
            (
                _c("record_key_l", "VARCHAR", "First record."),
                _c("record_key_r", "VARCHAR", "Second record."),
                _c("match_probability", "DOUBLE", "Fellegi-Sunter match probability."),
                _c("match_weight", "DOUBLE", "Log2 Bayes factor."),
                _c("evidence", "JSON", "Agreement level per compared field."),
                _c("status", "VARCHAR", "`linked` (above match_threshold), `pending` (review "
                   "band), `accepted` or `rejected` (by a person)."),
                _c("decided_at", "TIMESTAMP", "When a person decided (UTC)."),
            ),
        ),
        Table(
            "identity_graph",
            "The records' connected components in the identity graph before the guards "
            "(records joined by an identifier value, a matched pair or a person), as the last "
            "identify run found them: an incremental run rebuilds only the components that "
            "new records reach.",
            (
                _c("record_key", "VARCHAR", "The customer record."),
                _c("component", "BIGINT", "Its component: a hash of the component's "
                   "smallest record key."),
            ),
        ),
        Table(
            "identity_runs",
            "One row per identify run.",
            (
                _c("run_id", "BIGINT", "Run number."),
                _c("mode", "VARCHAR", "full or incremental."),
                _c("max_ingestion_id", "BIGINT", "Newest load the run saw."),
                _c("records", "BIGINT", "Customer records linked."),
                _c("customers", "BIGINT", "Customers after the run."),
                _c("started_at", "TIMESTAMP", "Start (UTC)."),
                _c("seconds", "DOUBLE", "Duration."),
            ),
        ),
        Table(
            "customer_scores",
            "Scores per customer and as-of date (value, defection, needs).",
            (
                _c("customer_id", "VARCHAR", "Customer."),
                _c("as_of", "DATE", "Date the scores describe."),
                _c("frequency", "DOUBLE", "Repeat purchase occasions before as_of."),
                _c("recency", "DOUBLE", "Time of the last purchase since the first."),
                _c("T", "DOUBLE", "Time since the first purchase."),
                _c("monetary_value", "DOUBLE", "Mean spend of repeat occasions."),
                _c("p_alive", "DOUBLE", "Probability the customer is still active."),
                _c("clv", "DOUBLE", "Predicted discounted margin over the horizon."),
                _c("value_tier", "VARCHAR", "Value tier."),
                _c("scores", "JSON", "Every other score by name."),
                _c("scored_at", "TIMESTAMP", "When computed (UTC)."),
            ),
        ),
        Table(
            "needs_segments",
            "Needs segments of each scoring run with their centroids, so that later runs keep "
            "ids and names (see docs/defection-and-needs.md).",
            (
                _c("as_of", "DATE", "Scoring date of the run."),
                _c("segment_id", "VARCHAR", "Stable segment id (S1, S2...)."),
                _c("name", "VARCHAR", "Readable name (`customer_scores.scores.needs_segment`)."),
                _c("description", "VARCHAR", "What sets the segment apart, in words."),
                _c("customers", "BIGINT", "Customers in the segment."),
                _c("centroid", "JSON", "Centroid in feature units, by feature name."),
                _c("silhouette", "DOUBLE", "Silhouette score of the run's clustering."),
                _c("created_at", "TIMESTAMP", "When computed (UTC)."),
            ),
        ),
        Table(
            "defection_monitor",
            "Value at risk of defection per value tier and needs segment, per as-of date "
            "(`needs_segment = 'all'`: tier totals).",
            (
                _c("as_of", "DATE", "Scoring date."),
                _c("value_tier", "VARCHAR", "Value tier (`unscored` without value scores)."),
                _c("needs_segment", "VARCHAR", "Needs segment, or `all`."),
                _c("customers", "BIGINT", "Customers."),
                _c("at_risk_customers", "BIGINT", "Customers whose defection risk is at or "
                   "above `[defection] alert_threshold`."),
                _c("value", "DOUBLE", "Sum of positive CLV."),
                _c("at_risk_value", "DOUBLE", "Sum of positive CLV x defection risk."),
                _c("at_risk_share", "DOUBLE", "at_risk_value / value."),
                _c("computed_at", "TIMESTAMP", "When computed (UTC)."),
            ),
        ),
        Table(
            "kpis",
            "Key figures of the customer base per calendar month (docs/measurement.md): one "
            "row per month and KPI, recomputed by `onetoone score` and `onetoone kpis`.",
            (
                _c("month", "DATE", "First day of the month (workspace time zone)."),
                _c("kpi", "VARCHAR", "`active_customers`, `new_customers`, `buyers`, "
                   "`repeat_rate`, `retention_12m`, `defection_rate`, `top_tier_value_share`, "
                   "`nps`."),
                _c("value", "DOUBLE", "The figure (a share from 0 to 1, NPS from -100 to 100)."),
                _c("base", "BIGINT", "Customers (or responses) the share is of."),
                _c("computed_at", "TIMESTAMP", "When computed (UTC)."),
            ),
        ),
        Table(
            "jobs",
            "Batch steps run by `onetoone serve` (`POST /v1/jobs`, or the CLI on a served "
            "workspace): one row per job, kept after it ends (docs/service.md).",
            (
                _c("job_id", "VARCHAR", "Job id."),
                _c("step", "VARCHAR", "`ingest`, `identify`, `score`, `kpis`, `report`, or a "
                   "person's identity decision: `merge`, `unmerge`, `review`."),
                _c("args", "JSON", "The step's arguments."),
                _c("status", "VARCHAR", "`queued`, `running`, `succeeded`, `failed`, "
                   "`cancelled`, or `interrupted` (the server stopped during it)."),
                _c("result", "JSON", "What the step did (its summary)."),
                _c("error", "VARCHAR", "Why it failed, in one sentence."),
                _c("created_at", "TIMESTAMP", "When submitted (UTC)."),
                _c("started_at", "TIMESTAMP", "When started (UTC)."),
                _c("finished_at", "TIMESTAMP", "When ended (UTC)."),
            ),
        ),
        Table(
            "actions",
            "The actions catalog: offers, messages and service gestures.",
            (
                _c("action_id", "VARCHAR", "Action name."),
                _c("issue", "VARCHAR", "Business issue (retention, growth, service...)."),
                _c("action_group", "VARCHAR", "Group within the issue."),
                _c("channels", "VARCHAR[]", "Channels that can carry it."),
                _c("definition", "JSON", "Rules, treatments, value, cost, levers."),
                _c("valid_from", "TIMESTAMP", "Start of validity (UTC)."),
                _c("valid_to", "TIMESTAMP", "End of validity (UTC)."),
            ),
        ),
        Table(
            "decisions",
            "Every decision taken, with what is needed to measure lift.",
            (
                _c("decision_id", "VARCHAR", "Decision id."),
                _c("customer_id", "VARCHAR", "Customer."),
                _c("channel", "VARCHAR", "Channel that asked."),
                _c("decided_at", "TIMESTAMP", "When (UTC)."),
                _c("action_id", "VARCHAR", "Chosen action; empty for no action."),
                _c("rank", "INTEGER", "Rank among the proposed actions."),
                _c("priority", "DOUBLE", "Arbitration priority."),
                _c("control_group", "VARCHAR", "universal, action holdout, or empty."),
                _c("context", "JSON", "Context and model inputs."),
            ),
        ),
        Table(
            "responses",
            "Responses to decisions (impression, click, accept, reject, ignore, conversion).",
            (
                _c("decision_id", "VARCHAR", "Decision answered."),
                _c("customer_id", "VARCHAR", "Customer."),
                _c("action_id", "VARCHAR", "Action."),
                _c("response", "VARCHAR", "impression, click, accept, reject, ignore, "
                   "conversion."),
                _c("value", "DOUBLE", "Value of a conversion."),
                _c("occurred_at", "TIMESTAMP", "When (UTC)."),
            ),
        ),
        Table(
            "propensities",
            "Adaptive propensity model: responses counted per action and segment (Beta-Bernoulli"
            " posterior = prior + counts).",
            (
                _c("action_id", "VARCHAR", "Action."),
                _c("segment", "VARCHAR", "Segment (`value_tier=top`, ... or `all`)."),
                _c("successes", "DOUBLE", "Clicks, accepts and conversions counted."),
                _c("failures", "DOUBLE", "Ignores and rejects counted."),
                _c("alpha", "DOUBLE", "Posterior alpha when written (prior + successes)."),
                _c("beta", "DOUBLE", "Posterior beta when written (prior + failures)."),
                _c("updated_at", "TIMESTAMP", "Last update (UTC)."),
            ),
        ),
        Table(
            "outbound",
            "Outbound lists of campaign runs (`onetoone decide`): who gets what, on which channel.",
            (
                _c("run_id", "VARCHAR", "Campaign run."),
                _c("decision_id", "VARCHAR", "Decision (see `decisions`)."),
                _c("customer_id", "VARCHAR", "Customer."),
                _c("channel", "VARCHAR", "Channel."),
                _c("action_id", "VARCHAR", "Action to deliver."),
                _c("priority", "DOUBLE", "Arbitration priority."),
                _c("address", "VARCHAR", "E-mail or phone the channel sends to."),
                _c("language", "VARCHAR", "Language of the treatment."),
                _c("treatment", "JSON", "Rendered treatment (subject, body...)."),
                _c("created_at", "TIMESTAMP", "When the run decided (UTC)."),
            ),
        ),
        Table(
            "deliveries",
            "One row per message handed to a channel (docs/channels.md): its state from queued "
            "to sent, delivered, bounced or failed; a message is sent once (its id is fixed by "
            "the campaign, the occurrence and the customer).",
            (
                _c("delivery_id", "VARCHAR", "Message id (stable: a resumed run skips sent "
                   "ones)."),
                _c("decision_id", "VARCHAR", "Decision that chose it."),
                _c("customer_id", "VARCHAR", "Customer."),
                _c("campaign", "VARCHAR", "Campaign (or `decide` run) that sent it."),
                _c("channel", "VARCHAR", "Channel name (`[channels.NAME]`, or the outbox)."),
                _c("action_id", "VARCHAR", "Action delivered."),
                _c("provider_id", "VARCHAR", "Id given by the provider (SMTP queue id, SMS "
                   "gateway id...)."),
                _c("status", "VARCHAR", "`queued`, `sent`, `delivered`, `bounced`, `failed`, "
                   "`dead` (a webhook after its retries)."),
                _c("attempts", "INTEGER", "Tries so far."),
                _c("error", "VARCHAR", "Why the last try failed, in one sentence."),
                _c("created_at", "TIMESTAMP", "When queued (UTC)."),
                _c("sent_at", "TIMESTAMP", "When the channel accepted it (UTC)."),
                _c("updated_at", "TIMESTAMP", "Last change (UTC)."),
            ),
        ),
        Table(
            "campaign_definitions",
            "Campaigns created through the API (`POST /v1/campaigns`, docs/campaigns.md): the "
            "settings of a `[campaigns.NAME]`, run like those of the file. A retired one no "
            "longer runs; its runs keep its name.",
            (
                _c("name", "VARCHAR", "Campaign name (letters, digits, `-`, `_`)."),
                _c("settings", "JSON", "Its settings: the keys of `[campaigns.NAME]`."),
                _c("created_by", "VARCHAR", "Name of the API key that created it."),
                _c("created_at", "TIMESTAMP", "When created (UTC)."),
                _c("updated_at", "TIMESTAMP", "Last change (UTC)."),
                _c("retired_at", "TIMESTAMP", "When retired (UTC); empty while it runs."),
            ),
        ),
        Table(
            "api_keys",
            "Keys of the REST API, stored hashed.",
            (
                _c("name", "VARCHAR", "Name given at creation."),
                _c("key_hash", "VARCHAR", "SHA-256 of the key (hexadecimal)."),
                _c("scopes", "VARCHAR[]", "events:write, consents:write, customers:read, "
                   "decisions, jobs, privacy, campaigns, admin."),
                _c("created_at", "TIMESTAMP", "When created (UTC)."),
                _c("revoked_at", "TIMESTAMP", "When revoked (UTC); empty while valid."),
                _c("expires_at", "TIMESTAMP", "When it stops being valid (UTC); empty: never "
                   "(a rotated key expires after its grace period)."),
            ),
        ),
        Table(
            "audit_log",
            "Who read or changed whose data (docs/privacy.md): every read of one person's data, "
            "consent change, key change, merge, unmerge and erasure; bulk reads as one entry "
            "per run with its counts. Written by onetoone only, readable by admins.",
            (
                _c("at", "TIMESTAMP", "When (UTC)."),
                _c("actor", "VARCHAR", "Who: 'key:NAME' (REST API), 'cli:USER', 'job:STEP', "
                   "'user:NAME' (dashboard)."),
                _c("action", "VARCHAR", "What, e.g. customer.read, consent.change, "
                   "privacy.export, privacy.erase, identity.merge, apikey.create, sql.query."),
                _c("customer_id", "VARCHAR", "The person concerned; empty for a bulk entry."),
                _c("details", "JSON", "Counts and parameters, never personal data."),
            ),
        ),
        Table(
            "erasures",
            "People erased or anonymised at their request or by retention (docs/privacy.md): "
            "keyed hashes of their identifiers, never the identifiers, so that a later load of "
            "the same records sends them to quarantine instead of bringing them back.",
            (
                _c("identifier_hash", "VARCHAR", "HMAC-SHA-256 of TYPE:VALUE under the "
                   "workspace's privacy key (hexadecimal)."),
                _c("erased_at", "TIMESTAMP", "When (UTC)."),
                _c("mode", "VARCHAR", "erase or anonymise."),
                _c("reason", "VARCHAR", "request or retention."),
            ),
        ),
    )
}


def render_markdown() -> str:
    """The data-model reference (``docs/data-model.md``), rendered from the declarations."""
    lines = [
        "# The open data model",
        "",
        "Every table below lives in the workspace's `onetoone.duckdb` and may be queried with any",
        "DuckDB client. This page is generated from `src/onetoone/schema.py`",
        f"(schema version {SCHEMA_VERSION}); a test fails when they differ.",
        "",
        "Times are stored in UTC without time zone. Source values are normalized on load: see",
        "[ingestion](ingestion.md).",
        "",
        "## Entities a source can load",
        "",
        "| entity | table | fields (required in bold) |",
        "|---|---|---|",
    ]
    for e in ENTITIES.values():
        names = ", ".join(f"**{f.name}**" if f.required else f.name for f in e.fields)
        lines.append(f"| {e.name} | `{e.table}` | {names} |")
    for t in TABLES.values():
        lines += ["", f"## `{t.name}`", "", t.description, "", "| column | type | meaning |",
                  "|---|---|---|"]
        lines += [f"| {c.name} | {c.sql_type} | {c.description} |" for c in t.columns]
    return "\n".join(lines) + "\n"
