"""Stand-in ledgers for the sender's tests and benchmark: `marts.decision_history` (with the coupon code a
decision ends with), `marts.decided_messages` over it and `restricted.message_contents`, as plain tables with
the columns of docs/INTERFACES.md, filled with made-up recipients. Never used against a warehouse dbt has
built. The keys and message ids come from the warehouse's own functions (`ops.idempotency_key`,
`ops.message_id`, plugins/cart_recovery/sql/schema.sql), the ones dbt uses.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

DDL = """
create schema if not exists marts;
create schema if not exists restricted;
create table if not exists marts.decision_history (
    decided_at timestamptz not null, scope text not null, campaign text not null, step integer not null,
    channel text, customer_id text, cart_id text not null, cart_version text not null, reason text,
    outbox_status text, outbox_channel text, coupon_tier text, coupon_percent numeric(5, 2),
    coupon_code text, idempotency_key text, message_id uuid, dry_run_key text, dry_run_message_id uuid
);
create or replace view marts.decided_messages as
select decided_at, scope, campaign, step, outbox_channel as channel, customer_id, cart_id, cart_version, reason,
    outbox_status, coupon_tier, coupon_percent, coupon_code, idempotency_key, message_id, dry_run_key,
    dry_run_message_id
from marts.decision_history
where outbox_status is not null;
create schema if not exists intermediate;
-- no exits (F2) unless a test builds the real view (dbt: +int_cart_version_exits)
create table if not exists intermediate.int_cart_version_exits (
    cart_id text, cart_version text, exit_reason text, exited_at timestamptz
);
create table if not exists marts.exclusion_reasons (
    reason text primary key, priority integer not null, hands_on boolean not null, rule text, description text
);
create table if not exists restricted.message_contents (
    decided_at timestamptz not null, scope text not null,
    campaign text not null, step integer not null, cart_id text not null, cart_version text not null,
    customer_id text, email text, phone text, first_name text, locale text, store_id text, store_name text,
    store_email text, store_phone text, store_address text, store_city text, store_region text,
    store_time_zone text, store_url text, cart_url text, cart_value numeric(12, 2), currency text,
    item_count integer, more_items_count integer, items jsonb
);
"""

# the keys, from the warehouse's own functions (the ones int_decisions uses)
_KEYS = """
update marts.decision_history
set idempotency_key = ops.idempotency_key(campaign, step, cart_id, cart_version),
    message_id = ops.message_id(ops.idempotency_key(campaign, step, cart_id, cart_version)),
    dry_run_key = ops.dry_run_key(ops.idempotency_key(campaign, step, cart_id, cart_version)),
    dry_run_message_id = ops.message_id(ops.dry_run_key(ops.idempotency_key(campaign, step, cart_id, cart_version)))
where idempotency_key is null
"""


def create_stub_marts(conn: psycopg.Connection) -> None:
    """The stand-in tables; `marts.exclusion_reasons` is the real seed's content (dbt_project/seeds)."""
    from cart_recovery import DBT_PROJECT_DIR

    conn.execute(DDL)
    seed = (DBT_PROJECT_DIR / "seeds" / "exclusion_reasons.csv").read_text(encoding="utf-8")
    with conn.cursor().copy("copy marts.exclusion_reasons from stdin with (format csv, header true)") as copy:
        copy.write(seed)
    conn.commit()


def items(n: int, max_items: int = 4, price: str = "20.00", title: str = "Titre numéro {i}") -> list[dict[str, Any]]:
    return [
        {
            "position": i,
            "sku": f"B{i}",
            "title": title.format(i=i),
            "author": f"Auteur {i}",
            "publisher": "Boréal",
            "image_url": f"https://img.example/B{i}.jpg",
            "product_url": f"https://shop.example/p/B{i}",
            "unit_price": price,
            "quantity": 1,
        }
        for i in range(1, min(n, max_items) + 1)
    ]


def recipient_rows(
    customer_id: str,
    decided_at: datetime,
    *,
    campaign: str = "bookstore_daily",
    step: int = 1,
    channel: str = "email",
    cart_id: str | None = None,
    cart_version: str = "v1",
    email: str | None = None,
    first_name: str | None = "Prénom",
    locale: str = "fr",
    n_items: int = 1,
    item_list: list[dict[str, Any]] | None = None,
    coupon_code: str | None = None,
    coupon_percent: float | None = None,
    store_name: str | None = "Librairie du Quartier",
    scope: str = "daily",
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    cart_id = cart_id or f"cart-{customer_id}"
    shown = item_list if item_list is not None else items(n_items)
    eligible = (
        decided_at,
        scope,
        campaign,
        step,
        channel,
        channel,
        customer_id,
        cart_id,
        cart_version,
        None,
        "pending",
        "t" if coupon_code else None,
        coupon_percent,
        coupon_code,
    )
    contents = (
        decided_at,
        scope,
        campaign,
        step,
        cart_id,
        cart_version,
        customer_id,
        email if email is not None else f"{customer_id}@mail.example",
        None,
        first_name,
        locale,
        "S1",
        store_name,
        "s1@libraires.example",
        "+15145550100",
        "123 rue Saint-Denis",
        "Montréal",
        "QC",
        "America/Toronto",
        "https://shop.example/S1",
        f"https://shop.example/cart/{cart_id}",
        20 * n_items,
        "CAD",
        n_items,
        max(n_items - len(shown), 0),
        json.dumps(shown),
    )
    return eligible, contents


ELIGIBLE_COLUMNS = (
    "decided_at",
    "scope",
    "campaign",
    "step",
    "channel",
    "outbox_channel",
    "customer_id",
    "cart_id",
    "cart_version",
    "reason",
    "outbox_status",
    "coupon_tier",
    "coupon_percent",
    "coupon_code",
)
CONTENT_COLUMNS = (
    "decided_at",
    "scope",
    "campaign",
    "step",
    "cart_id",
    "cart_version",
    "customer_id",
    "email",
    "phone",
    "first_name",
    "locale",
    "store_id",
    "store_name",
    "store_email",
    "store_phone",
    "store_address",
    "store_city",
    "store_region",
    "store_time_zone",
    "store_url",
    "cart_url",
    "cart_value",
    "currency",
    "item_count",
    "more_items_count",
    "items",
)


def decision_row(customer_id: str, decided_at: datetime, **kw: Any) -> dict[str, Any]:
    """One row as the sender reads it (the decision joined with its contents), without a database: for render
    tests. Its message id is made up (the real one is the warehouse's, `ops.message_id`)."""
    import uuid

    e, c = recipient_rows(customer_id, decided_at, **kw)
    row = {**dict(zip(CONTENT_COLUMNS, c, strict=True)), **dict(zip(ELIGIBLE_COLUMNS, e, strict=True))}
    row["items"] = json.loads(row["items"])
    row["idempotency_key"] = f"test:{row['campaign']}:{row['step']}:{row['cart_id']}"
    row["message_id"] = uuid.uuid5(uuid.NAMESPACE_URL, row["idempotency_key"])
    return row


def add_recipients(conn: psycopg.Connection, rows: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> None:
    """COPY (decision, contents) pairs made by recipient_rows into the stub ledgers."""
    with conn.cursor() as cur:
        with cur.copy(f"copy marts.decision_history ({', '.join(ELIGIBLE_COLUMNS)}) from stdin") as copy:
            for e, _ in rows:
                copy.write_row(e)
        with cur.copy(f"copy restricted.message_contents ({', '.join(CONTENT_COLUMNS)}) from stdin") as copy:
            for _, c in rows:
                copy.write_row(c)
        cur.execute(_KEYS)
    conn.commit()


def add_recipient(conn: psycopg.Connection, customer_id: str, decided_at: datetime, **kw: Any) -> None:
    add_recipients(conn, [recipient_rows(customer_id, decided_at, **kw)])


def add_exclusion(
    conn: psycopg.Connection,
    customer_id: str,
    reason: str,
    decided_at: datetime,
    *,
    recorded: bool = False,
    campaign: str = "bookstore_daily",
    step: int = 1,
    cart_version: str = "v1",
    scope: str = "daily",
    channel: str = "email",
) -> None:
    """A decision not to message; `recorded`: it becomes a skipped outbox row (as int_decisions says of a
    holdout, or of a skip that hands a sequence on)."""
    conn.execute(
        "insert into marts.decision_history (decided_at, scope, campaign, step, outbox_channel, customer_id, "
        "cart_id, cart_version, reason, outbox_status) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            decided_at,
            scope,
            campaign,
            step,
            channel,
            customer_id,
            f"cart-{customer_id}",
            cart_version,
            reason,
            "skipped" if recorded else None,
        ),
    )
    conn.execute(_KEYS)
    conn.commit()
