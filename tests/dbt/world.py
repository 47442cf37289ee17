"""A small world in the raw and ops tables, written row by row, for the dbt tests.

Independent of the ingest code on purpose: each test states the rows it needs, with the same columns the
ingest writes (contract §2, `plugins/cart_recovery/sql/schema.sql`). Every raw row gets a provenance
(`_file_name`, `_line_number`) whose line number grows with every insert, so "loaded later" means
"inserted later" unless a test passes its own file name. `snapshot` and `outcome` read the marts back.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

from cart_recovery.campaigns import parse_campaign, to_dbt_vars

T = datetime.fromisoformat("2026-11-20T14:00:00+00:00")


def h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def d(days: float) -> timedelta:
    return timedelta(days=days)


def campaign(name: str = "bookstore_daily", **overrides: Any) -> dict[str, Any]:
    """A campaign var as `cart_recovery.campaigns` builds it (its defaults, the only ones), in the daily
    scope; `campaigns_var` re-derives each step's `decided` flag for another scope."""
    steps = overrides.pop("steps", None) or [{"channels": ["email"]}]
    parsed = parse_campaign({"name": name, "enabled": True, **overrides, "steps": steps}, f"{name}.yml")
    return to_dbt_vars([parsed])[0]


def campaigns_var(campaigns: list[dict[str, Any]], scope: str | None) -> list[dict[str, Any]]:
    """The campaigns var of a build in `scope` (None: daily): the step flags set as the DAGs set them."""
    out = []
    for c in campaigns:
        raw = {k: v for k, v in c.items() if k != "steps"}
        raw["steps"] = [{k: v for k, v in s.items() if k not in ("step", "decided")} for s in c["steps"]]
        out.append(to_dbt_vars([parse_campaign({**raw, "enabled": True}, f"{c['name']}.yml")], scope or "daily")[0])
    return out


def message_keys(
    conn: psycopg.Connection, campaign: str, step: int, cart_id: str, cart_version: str, dry_run: bool = False
) -> tuple[str, str]:
    """(idempotency key, message id) of a message, from the warehouse's functions: the one definition, which
    dbt uses (plugins/cart_recovery/sql/schema.sql)."""
    key = "ops.idempotency_key(%s, %s, %s, %s)"
    if dry_run:
        key = f"ops.dry_run_key({key})"
    got = conn.execute(f"select {key}, ops.message_id({key})::text", (campaign, step, cart_id, cart_version) * 2)
    return tuple(got.fetchone())  # type: ignore[return-value]


class World:
    """Insert helpers with sensible defaults; every row gets a file name and a line number."""

    def __init__(self, conn: psycopg.Connection, file_name: str = "test_world") -> None:
        self.conn = conn
        self.file_name = file_name
        self._lines = itertools.count(1)

    def _insert(
        self,
        table: str,
        row: dict[str, Any],
        provenance: bool | None = None,
        file_name: str | None = None,
        conflict: str = "",
    ) -> None:
        """One row; raw tables (provenance None) get `_file_name` and `_line_number`, ops tables do not."""
        if provenance if provenance is not None else table.startswith("raw."):
            row = {**row, "_file_name": file_name or self.file_name, "_line_number": next(self._lines)}
        cols = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        self.conn.execute(f"insert into {table} ({cols}) values ({marks}) {conflict}", list(row.values()))

    def customer(
        self,
        customer_id: str,
        email: str | None = "",
        *,
        phone: str | None = None,
        first_name: str | None = "Anne",
        locale: str | None = "fr",
        customer_type: str = "consumer",
        institution_kind: str | None = None,
        preferred_store_id: str | None = None,
        updated_at: datetime | None = None,
        consent: bool = True,
        file_name: str | None = None,
    ) -> str:
        """A customer version; `email=""` means "a valid address made from the id" (`<id>@example.org`);
        consent=True adds an express email consent granted long before T."""
        if email == "":
            email = f"{customer_id}@example.org"
        self._insert(
            "raw.customers",
            {
                "customer_id": customer_id,
                "email": email,
                "phone": phone,
                "first_name": first_name,
                "last_name": "Tremblay",
                "locale": locale,
                "customer_type": customer_type,
                "institution_kind": institution_kind,
                "preferred_store_id": preferred_store_id,
                "updated_at": updated_at or T - d(400),
            },
            file_name=file_name,
        )
        if consent:
            self.consent(customer_id)
        return customer_id

    def consent(
        self,
        customer_id: str,
        channel: str = "email",
        status: str = "granted",
        basis: str | None = "express",
        recorded_at: datetime | None = None,
    ) -> None:
        self._insert(
            "raw.consents",
            {
                "customer_id": customer_id,
                "channel": channel,
                "status": status,
                "basis": basis,
                "recorded_at": recorded_at or T - d(300),
                "source": "checkout",
            },
        )

    def store(self, store_id: str, name: str | None = None) -> None:
        self._insert(
            "raw.stores",
            {
                "store_id": store_id,
                "name": name or f"Librairie {store_id}",
                "email": f"{store_id}@stores.example.org",
                "phone": "+15145550000",
                "address": "1 rue Principale",
                "city": "Montréal",
                "region": "QC",
                "url": f"https://{store_id}.example.org",
            },
        )

    def product(self, sku: str, price: float = 10.0, title: str | None = None) -> None:
        self._insert(
            "raw.products",
            {
                "sku": sku,
                "title": title or f"Title {sku}",
                "author": "Author",
                "publisher": "Publisher",
                "image_url": f"https://img.example.org/{sku}.jpg",
                "product_url": f"https://shop.example.org/p/{sku}",
                "price": price,
                "currency": "CAD",
                "updated_at": T - d(30),
            },
        )

    def cart(
        self,
        event_id: str,
        cart_id: str,
        occurred_at: datetime,
        customer_id: str | None,
        items: list[tuple[str, int, float] | tuple[str, int, float, datetime]] | None = None,
        *,
        event_type: str = "cart_updated",
        device: str = "desktop",
        store_id: str | None = "s1",
        file_name: str | None = None,
    ) -> None:
        """A cart event; items are (sku, quantity, unit_price[, added_at]) (added_at defaults to occurred_at).
        `cart_deleted` events carry no items; a file name of its own makes the event "loaded later" (D1)."""
        if items is None:
            items = [] if event_type == "cart_deleted" else [("sku-1", 1, 20.0)]
        payload = [
            {
                "sku": it[0],
                "quantity": it[1],
                "unit_price": it[2],
                "added_at": (it[3] if len(it) > 3 else occurred_at).isoformat(),  # type: ignore[misc]
            }
            for it in items
        ]
        self._insert(
            "raw.cart_events",
            {
                "event_id": event_id,
                "event_type": event_type,
                "occurred_at": occurred_at,
                "cart_id": cart_id,
                "customer_id": customer_id,
                "device": device,
                "store_id": store_id,
                "currency": "CAD",
                "cart_url": f"https://shop.example.org/cart/{cart_id}",
                "items": json.dumps(payload),
            },
            file_name=file_name,
        )

    def order(
        self,
        order_id: str,
        customer_id: str | None,
        placed_at: datetime,
        skus: list[str],
        *,
        status: str = "completed",
        cart_id: str | None = None,
        event_id: str | None = None,
        file_name: str | None = None,
    ) -> None:
        """An order event; the same order sent again with a new status needs a later file name or line (the
        latest-loaded event of an order wins)."""
        items = [{"sku": s, "quantity": 1, "unit_price": 10.0} for s in skus]
        self._insert(
            "raw.orders",
            {
                "event_id": event_id or f"oe-{order_id}-{status}",
                "order_id": order_id,
                "customer_id": customer_id,
                "cart_id": cart_id,
                "placed_at": placed_at,
                "status": status,
                "store_id": "s1",
                "currency": "CAD",
                "total": 10.0 * len(skus),
                "items": json.dumps(items),
            },
            file_name=file_name,
        )

    def provider_event(
        self,
        event: str,
        email: str | None,
        occurred_at: datetime,
        *,
        reason: str | None = None,
        message_id: str | None = None,
        sg_event_id: str | None = None,
        bounce_type: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """A SendGrid event; bounce_type is the payload's `type` (`bounce` hard, `blocked` soft); `extra`
        adds payload keys (an SMS STOP's `phone` or `customer_id`)."""
        payload: dict[str, Any] = {"event": event, "email": email, "timestamp": int(occurred_at.timestamp())}
        payload.update(extra or {})
        if reason:
            payload["reason"] = reason
        if bounce_type:
            payload["type"] = bounce_type
        if message_id:
            payload["message_id"] = message_id
        self._insert(
            "raw.provider_events",
            {
                "sg_event_id": sg_event_id or uuid.uuid4().hex,
                "event": event,
                "email": email,
                "occurred_at": occurred_at,
                "sg_message_id": f"sg-{uuid.uuid4().hex[:8]}",
                "message_id": message_id,
                "campaign": "bookstore_daily",
                "payload": json.dumps(payload),
            },
        )

    def message(
        self,
        campaign: str,
        step: int,
        customer_id: str,
        cart_id: str,
        cart_version: str,
        decided_at: datetime,
        status: str = "sent",
        channel: str = "email",
        *,
        skip_reason: str | None = None,
        sent_at: datetime | None = None,
    ) -> str:
        """An outbox row as the sender writes it (S2); a later row for the same key replaces it, as a real
        send replaces an earlier dry run's row."""
        key, message_id = message_keys(self.conn, campaign, step, cart_id, cart_version)
        self._insert(
            "ops.messages",
            {
                "message_id": message_id,
                "idempotency_key": key,
                "campaign": campaign,
                "step": step,
                "channel": channel,
                "customer_id": customer_id,
                "cart_id": cart_id,
                "cart_version": cart_version,
                "status": status,
                "skip_reason": skip_reason,
                "decided_at": decided_at,
                "sent_at": sent_at,
            },
            conflict="on conflict (idempotency_key) do update set status = excluded.status, "
            "decided_at = excluded.decided_at, sent_at = excluded.sent_at, skip_reason = excluded.skip_reason",
        )
        return message_id

    def unsubscribe(self, customer_id: str, recorded_at: datetime, channel: str = "email") -> None:
        self._insert(
            "ops.unsubscribes",
            {"customer_id": customer_id, "channel": channel, "recorded_at": recorded_at, "source": "link"},
        )

    def test_group(self, customer_id: str) -> None:
        self._insert("raw.test_group", {"customer_id": customer_id})

    def coupon_codes(self, pool: str, codes: list[str]) -> None:
        for code in codes:
            self._insert("raw.coupon_codes", {"pool": pool, "code": code})

    def push_subscription(
        self,
        customer_id: str,
        status: str = "active",
        recorded_at: datetime | None = None,
        *,
        kind: str = "web",
        endpoint: str | None = None,
    ) -> str:
        """A subscription record (contract §2); web push has keys, an app's (ios, android) endpoint is the
        device token. Returns the endpoint."""
        endpoint = endpoint or (
            f"https://push.example.org/{customer_id}" if kind == "web" else f"token-{kind}-{customer_id}"
        )
        self._insert(
            "raw.push_subscriptions",
            {
                "customer_id": customer_id,
                "kind": kind,
                "endpoint": endpoint,
                "p256dh": "key" if kind == "web" else None,
                "auth": "auth" if kind == "web" else None,
                "status": status,
                "recorded_at": recorded_at or T - d(10),
            },
        )
        return endpoint

    def push_revocation(self, endpoint: str, customer_id: str, revoked_at: datetime) -> None:
        """A push service's 404/410 as the sender records it (ops.push_revocations, E2)."""
        self._insert(
            "ops.push_revocations",
            {"endpoint": endpoint, "customer_id": customer_id, "revoked_at": revoked_at, "reason": "gone"},
        )


def rows(conn: psycopg.Connection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def snapshot(conn: psycopg.Connection) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """The decisions of the last build, each mart keyed by (campaign, cart_id)."""
    marts = {
        "abandoned": "marts.abandoned_carts",
        "eligible": "marts.eligible_recipients",
        "excluded": "marts.recipient_exclusions",
    }
    return {
        name: {
            (r["campaign"], r["cart_id"]): r for r in rows(conn, f"select * from {table} order by campaign, cart_id")
        }
        for name, table in marts.items()
    }


def outcome(decisions: dict[str, Any], campaign_name: str, cart_id: str) -> str | None:
    """`eligible`, the exclusion reason, or None when the cart is not abandoned in that campaign."""
    key = (campaign_name, cart_id)
    if key in decisions["eligible"]:
        return "eligible"
    if key in decisions["excluded"]:
        return decisions["excluded"][key]["reason"]
    return None
