"""Stand-in marts for the sender's tests and benchmark: `marts.eligible_recipients`,
`restricted.message_contents` and `marts.recipient_exclusions` as plain tables with the columns of
docs/INTERFACES.md, filled with made-up recipients. Never used against a warehouse dbt has built.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

DDL = """
create schema if not exists marts;
create schema if not exists restricted;
create table if not exists marts.eligible_recipients (
    campaign text not null, step integer not null, channel text not null, customer_id text not null,
    cart_id text not null, cart_version text not null, decided_at timestamptz not null,
    coupon_tier text, coupon_percent numeric(5, 2), coupon_code text
);
create table if not exists restricted.message_contents (
    campaign text not null, step integer not null, cart_id text not null, cart_version text not null,
    email text, phone text, first_name text, locale text, store_id text, store_name text, store_email text,
    store_phone text, store_address text, store_city text, store_region text, store_url text, cart_url text,
    cart_value numeric(12, 2), currency text, item_count integer, more_items_count integer, items jsonb
);
create table if not exists marts.recipient_exclusions (
    campaign text, step integer, cart_id text not null, cart_version text, customer_id text,
    reason text not null, decided_at timestamptz not null
);
"""


def create_stub_marts(conn: psycopg.Connection) -> None:
    conn.execute(DDL)
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
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    cart_id = cart_id or f"cart-{customer_id}"
    shown = item_list if item_list is not None else items(n_items)
    eligible = (
        campaign,
        step,
        channel,
        customer_id,
        cart_id,
        cart_version,
        decided_at,
        "t" if coupon_code else None,
        coupon_percent,
        coupon_code,
    )
    contents = (
        campaign,
        step,
        cart_id,
        cart_version,
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
    "campaign",
    "step",
    "channel",
    "customer_id",
    "cart_id",
    "cart_version",
    "decided_at",
    "coupon_tier",
    "coupon_percent",
    "coupon_code",
)
CONTENT_COLUMNS = (
    "campaign",
    "step",
    "cart_id",
    "cart_version",
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
    "store_url",
    "cart_url",
    "cart_value",
    "currency",
    "item_count",
    "more_items_count",
    "items",
)


def decision_row(customer_id: str, decided_at: datetime, **kw: Any) -> dict[str, Any]:
    """One row as the sender reads it (eligible joined with contents), without a database: for render tests."""
    e, c = recipient_rows(customer_id, decided_at, **kw)
    row = {**dict(zip(CONTENT_COLUMNS, c, strict=True)), **dict(zip(ELIGIBLE_COLUMNS, e, strict=True))}
    row["items"] = json.loads(row["items"])
    row["idempotency_key"] = f"{row['campaign']}:{row['step']}:{row['cart_id']}:{row['cart_version']}"
    return row


def add_recipients(conn: psycopg.Connection, rows: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> None:
    """COPY (eligible, contents) pairs made by recipient_rows into the stub marts."""
    with conn.cursor() as cur:
        with cur.copy(
            "copy marts.eligible_recipients (campaign, step, channel, customer_id, cart_id, cart_version, "
            "decided_at, coupon_tier, coupon_percent, coupon_code) from stdin"
        ) as copy:
            for e, _ in rows:
                copy.write_row(e)
        with cur.copy(
            "copy restricted.message_contents (campaign, step, cart_id, cart_version, email, phone, first_name, "
            "locale, store_id, store_name, store_email, store_phone, store_address, store_city, store_region, "
            "store_url, cart_url, cart_value, currency, item_count, more_items_count, items) from stdin"
        ) as copy:
            for _, c in rows:
                copy.write_row(c)
    conn.commit()


def add_recipient(conn: psycopg.Connection, customer_id: str, decided_at: datetime, **kw: Any) -> None:
    add_recipients(conn, [recipient_rows(customer_id, decided_at, **kw)])


def add_exclusion(
    conn: psycopg.Connection,
    customer_id: str,
    reason: str,
    decided_at: datetime,
    *,
    campaign: str = "bookstore_daily",
    step: int | None = 1,
    cart_version: str = "v1",
) -> None:
    conn.execute(
        "insert into marts.recipient_exclusions (campaign, step, cart_id, cart_version, customer_id, reason, "
        "decided_at) values (%s, %s, %s, %s, %s, %s, %s)",
        (campaign, step, f"cart-{customer_id}", cart_version, customer_id, reason, decided_at),
    )
    conn.commit()
