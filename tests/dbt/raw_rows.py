"""Rows written straight into the raw.* and ops.* tables for the rule tests (no ingest involved).

Each helper writes one row with the columns of `plugins/cart_recovery/sql/schema.sql` (contract §2) and a
provenance (`_file_name`, `_line_number`) that grows with every insert, so "loaded later" means "inserted
later" unless a test passes its own file name. `Rules` also reads the marts back as plain dicts.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

# T of the tests: 09:00 America/Toronto on 2026-11-20, a daily run's data-interval end
T = datetime.fromisoformat("2026-11-20T14:00:00+00:00")


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def campaign(name: str, **settings: Any) -> dict[str, Any]:
    """A `campaigns` var entry with the contract §6 defaults, as `campaigns.to_dbt_vars` builds it."""
    steps = settings.pop("steps", [{"channels": ["email"]}])
    out: dict[str, Any] = {
        "name": name,
        "cadence": "daily",
        "audience": "all",
        "default_locale": "fr",
        "abandon_after_minutes": 60,
        "max_cart_age_hours": 24,
        "frequency_cap_days": 7,
        "holdout_percent": 0,
        "max_items": 4,
        "coupon_tiers": "none",
        "implied_consent_days": 730,
        "attribution_window_hours": 24,
        **settings,
    }
    out["steps"] = [
        {
            "step": i,
            "channels": ["email"],
            "delay_minutes": 0,
            "template": "abandoned_cart",
            "only_if_not_engaged": False,
            "coupon_tiers": None,
            **step,
        }
        for i, step in enumerate(steps, start=1)
    ]
    return out


def item(sku: str, price: str = "20.00", quantity: int = 1, added_at: datetime | None = None) -> dict[str, Any]:
    """One cart line as the exporter sends it (`added_at` None: the shop did not say)."""
    return {
        "sku": sku,
        "quantity": quantity,
        "unit_price": price,
        "added_at": added_at.isoformat() if added_at else None,
    }


class Rules:
    """Insert helpers over one autocommit connection."""

    def __init__(self, conn: psycopg.Connection, file_name: str = "rules_world") -> None:
        self.conn = conn
        self.file_name = file_name
        self._line = itertools.count(1)
        self._event = itertools.count(1)

    # ---- writing -------------------------------------------------------------------------------------
    def _insert(self, table: str, row: dict[str, Any], file_name: str | None = None, conflict: str = "") -> None:
        if table.startswith("raw."):
            row = {**row, "_file_name": file_name or self.file_name, "_line_number": next(self._line)}
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
        file_name: str | None = None,
    ) -> str:
        """A customer version; `email=""` gives `<id>@mail.example`."""
        self._insert(
            "raw.customers",
            {
                "customer_id": customer_id,
                "email": f"{customer_id}@mail.example" if email == "" else email,
                "phone": phone,
                "first_name": first_name,
                "last_name": "Tremblay",
                "locale": locale,
                "customer_type": customer_type,
                "institution_kind": institution_kind,
                "preferred_store_id": preferred_store_id,
                "updated_at": updated_at or T - days(400),
            },
            file_name,
        )
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
                "recorded_at": recorded_at or T - days(100),
                "source": "checkout",
            },
        )

    def consumer(self, customer_id: str, **customer: Any) -> str:
        """The common case: a consumer with a valid email and an express email consent."""
        self.customer(customer_id, **customer)
        self.consent(customer_id)
        return customer_id

    def cart(
        self,
        cart_id: str,
        customer_id: str | None,
        at: datetime,
        items: list[dict[str, Any]] | None = None,
        *,
        event_id: str | None = None,
        deleted: bool = False,
        store_id: str | None = "S1",
        device: str | None = "desktop",
        file_name: str | None = None,
    ) -> str:
        """A `cart_updated` event (or `cart_deleted` with deleted=True); returns its event id."""
        event_id = event_id or f"{cart_id}-e{next(self._event)}"
        self._insert(
            "raw.cart_events",
            {
                "event_id": event_id,
                "event_type": "cart_deleted" if deleted else "cart_updated",
                "occurred_at": at,
                "cart_id": cart_id,
                "customer_id": customer_id,
                "device": device,
                "store_id": store_id,
                "currency": "CAD",
                "cart_url": f"https://shop.example/cart/{cart_id}",
                "items": json.dumps([] if deleted else (items if items is not None else [item("SKU-1")])),
            },
            file_name,
        )
        return event_id

    def order(
        self,
        order_id: str,
        customer_id: str | None,
        placed_at: datetime,
        skus: list[str],
        *,
        cart_id: str | None = None,
        status: str = "completed",
        file_name: str | None = None,
    ) -> None:
        lines = [{"sku": s, "quantity": 1, "unit_price": "20.00"} for s in skus]
        self._insert(
            "raw.orders",
            {
                "event_id": f"{order_id}-{status}-{next(self._event)}",
                "order_id": order_id,
                "customer_id": customer_id,
                "cart_id": cart_id,
                "placed_at": placed_at,
                "status": status,
                "store_id": "S1",
                "currency": "CAD",
                "total": Decimal("20.00") * len(lines),
                "items": json.dumps(lines),
            },
            file_name,
        )

    def provider_event(self, event: str, email: str, occurred_at: datetime, **payload: Any) -> None:
        sg_event_id = f"sg-{next(self._event)}"
        body = {"sg_event_id": sg_event_id, "event": event, "email": email, **payload}
        self._insert(
            "raw.provider_events",
            {
                "sg_event_id": sg_event_id,
                "event": event,
                "email": email,
                "occurred_at": occurred_at,
                "sg_message_id": f"sgm-{sg_event_id}",
                "message_id": None,
                "campaign": None,
                "payload": json.dumps(body),
            },
        )

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

    def message(
        self,
        campaign: str,
        customer_id: str,
        cart_id: str,
        cart_version: str,
        decided_at: datetime,
        *,
        step: int = 1,
        status: str = "sent",
        channel: str = "email",
        skip_reason: str | None = None,
    ) -> None:
        """An outbox row, as the sender writes it (S2); a real send replaces an earlier dry run's row."""
        key = f"{campaign}:{step}:{cart_id}:{cart_version}"
        self._insert(
            "ops.messages",
            {
                "message_id": uuid.uuid5(uuid.NAMESPACE_URL, key),
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
                "sent_at": decided_at + timedelta(minutes=5) if status == "sent" else None,
            },
            conflict="on conflict (idempotency_key) do update set status = excluded.status, "
            "decided_at = excluded.decided_at, sent_at = excluded.sent_at, skip_reason = excluded.skip_reason",
        )

    # ---- reading -------------------------------------------------------------------------------------
    def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql, params).fetchall()

    def snapshot(self) -> dict[str, Any]:
        """The decisions of the last build, keyed by (campaign, cart_id)."""
        return {
            "abandoned": {
                (r["campaign"], r["cart_id"]): r
                for r in self.rows("select * from marts.abandoned_carts order by campaign, cart_id")
            },
            "eligible": {
                (r["campaign"], r["cart_id"]): r
                for r in self.rows("select * from marts.eligible_recipients_decided order by campaign, cart_id")
            },
            "excluded": {
                (r["campaign"], r["cart_id"]): r
                for r in self.rows("select * from marts.recipient_exclusions order by campaign, cart_id")
            },
        }


def outcome(snapshot: dict[str, Any], campaign_name: str, cart_id: str) -> str | None:
    """`eligible`, the exclusion reason, or None when the cart is not abandoned in that campaign."""
    key = (campaign_name, cart_id)
    if key in snapshot["eligible"]:
        return "eligible"
    if key in snapshot["excluded"]:
        return snapshot["excluded"][key]["reason"]
    return None
