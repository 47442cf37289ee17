"""The landing files of contract §2: one spec per kind, and the row checks that send a row to quarantine (O4).

A check returns the typed row (a tuple in the raw table's column order) or raises `BadRow` with a short
reason that lands in `raw.quarantine.reason`. Reasons never quote field values: they may hold PII (O5).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class BadRow(ValueError):
    """A row that breaks the contract; its message is the quarantine reason."""


Row = tuple[Any, ...]


def ts(value: Any, field: str) -> datetime:
    """ISO 8601 with an offset (contract §2); naive timestamps are refused rather than guessed."""
    if not isinstance(value, str) or not value.strip():
        raise BadRow(f"missing {field}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadRow(f"bad timestamp in {field}") from None
    if parsed.tzinfo is None:
        raise BadRow(f"timestamp without offset in {field}")
    return parsed


def amount(value: Any, field: str, required: bool = True) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRow(f"missing {field}")
        return None
    if isinstance(value, bool):
        raise BadRow(f"bad amount in {field}")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadRow(f"bad amount in {field}") from None
    if not parsed.is_finite():
        raise BadRow(f"bad amount in {field}")
    if parsed < 0:
        raise BadRow(f"negative amount in {field}")
    return parsed


def required(value: Any, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRow(f"missing {field}")
    if not isinstance(value, str | int):
        raise BadRow(f"bad type for {field}")
    return str(value).strip()


def optional(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def enum(value: Any, field: str, allowed: Sequence[str], nullable: bool = False) -> str | None:
    text = optional(value)
    if text is None:
        if nullable:
            return None
        raise BadRow(f"missing {field}")
    if text not in allowed:
        raise BadRow(f"unknown {field} value")
    return text


_PRICE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,4})?")


def _fast_item_ok(item: Any) -> bool:
    """The common, valid item, checked without a function call per field (ingest's hot loop)."""
    if type(item) is not dict:
        return False
    sku, qty, price = item.get("sku"), item.get("quantity"), item.get("unit_price")
    if type(sku) is not str or not sku or type(qty) is not int or qty <= 0:
        return False
    if not (type(price) is str and _PRICE.fullmatch(price)):
        return False
    added = item.get("added_at")
    if added is None:
        return "added_at" not in item
    try:
        return type(added) is str and datetime.fromisoformat(added).tzinfo is not None
    except ValueError:
        return False


def _check_item(i: int, item: Any, with_added_at: bool) -> None:
    """The slow path: finds the reason an item breaks the contract."""
    if not isinstance(item, dict):
        raise BadRow(f"items[{i}] is not an object")
    required(item.get("sku"), f"items[{i}].sku")
    qty = item.get("quantity")
    if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
        raise BadRow(f"bad quantity in items[{i}]")
    amount(item.get("unit_price"), f"items[{i}].unit_price")
    if with_added_at and "added_at" in item:
        ts(item.get("added_at"), f"items[{i}].added_at")


def _cart_items(items: Any) -> str:
    if not isinstance(items, list):
        raise BadRow("items is not a list")
    for i, item in enumerate(items):
        if not _fast_item_ok(item):
            _check_item(i, item, with_added_at=True)
    return json.dumps(items, ensure_ascii=False)


def _order_items(items: Any) -> str:
    if not isinstance(items, list):
        raise BadRow("items is not a list")
    for i, item in enumerate(items):
        _check_item(i, item, with_added_at=False)
    return json.dumps(items, ensure_ascii=False)


def customers(r: dict[str, Any]) -> Row:
    kind = enum(r.get("customer_type"), "customer_type", ("consumer", "institution"))
    return (
        required(r.get("customer_id"), "customer_id"),
        optional(r.get("email")),
        optional(r.get("phone")),
        optional(r.get("first_name")),
        optional(r.get("last_name")),
        enum(r.get("locale"), "locale", ("fr", "en"), nullable=True),
        kind,
        enum(
            r.get("institution_kind"),
            "institution_kind",
            ("library", "school", "cegep", "university", "other"),
            nullable=True,
        ),
        optional(r.get("preferred_store_id")),
        ts(r.get("updated_at"), "updated_at"),
    )


def consents(r: dict[str, Any]) -> Row:
    return (
        required(r.get("customer_id"), "customer_id"),
        enum(r.get("channel"), "channel", ("email", "sms", "push")),
        enum(r.get("status"), "status", ("granted", "withdrawn")),
        enum(r.get("basis"), "basis", ("express", "implied"), nullable=True),
        ts(r.get("recorded_at"), "recorded_at"),
        optional(r.get("source")),
    )


def products(r: dict[str, Any]) -> Row:
    return (
        required(r.get("sku"), "sku"),
        optional(r.get("title")),
        optional(r.get("author")),
        optional(r.get("publisher")),
        optional(r.get("image_url")),
        optional(r.get("product_url")),
        amount(r.get("price"), "price", required=False),
        optional(r.get("currency")),
        ts(r.get("updated_at"), "updated_at"),
    )


def stores(r: dict[str, Any]) -> Row:
    return (
        required(r.get("store_id"), "store_id"),
        optional(r.get("name")),
        optional(r.get("email")),
        optional(r.get("phone")),
        optional(r.get("address")),
        optional(r.get("city")),
        optional(r.get("region")),
        optional(r.get("url")),
    )


def test_group(r: dict[str, Any]) -> Row:
    return (required(r.get("customer_id"), "customer_id"),)


def coupon_codes(r: dict[str, Any]) -> Row:
    return (required(r.get("pool"), "pool"), required(r.get("code"), "code"))


def push_subscriptions(r: dict[str, Any]) -> Row:
    return (
        required(r.get("customer_id"), "customer_id"),
        enum(r.get("kind"), "kind", ("web", "ios", "android")),
        required(r.get("endpoint"), "endpoint"),
        optional(r.get("p256dh")),
        optional(r.get("auth")),
        enum(r.get("status"), "status", ("active", "revoked")),
        ts(r.get("recorded_at"), "recorded_at"),
    )


def cart_events(r: dict[str, Any]) -> Row:
    event_type = enum(r.get("event_type"), "event_type", ("cart_updated", "cart_deleted"))
    items = r.get("items")
    if event_type == "cart_updated" and "items" not in r:
        raise BadRow("missing items")
    return (
        required(r.get("event_id"), "event_id"),
        event_type,
        ts(r.get("occurred_at"), "occurred_at"),
        required(r.get("cart_id"), "cart_id"),
        optional(r.get("customer_id")),
        enum(r.get("device"), "device", ("mobile", "desktop", "tablet", "unknown"), nullable=True),
        optional(r.get("store_id")),
        optional(r.get("currency")),
        optional(r.get("cart_url")),
        _cart_items(items if items is not None else []),
    )


def orders(r: dict[str, Any]) -> Row:
    return (
        required(r.get("event_id"), "event_id"),
        required(r.get("order_id"), "order_id"),
        optional(r.get("customer_id")),
        optional(r.get("cart_id")),
        ts(r.get("placed_at"), "placed_at"),
        enum(r.get("status"), "status", ("completed", "cancelled", "refunded")),
        optional(r.get("store_id")),
        optional(r.get("currency")),
        amount(r.get("total"), "total"),
        _order_items(r.get("items") if "items" in r else None),
    )


PROVIDER_EVENTS = (
    "processed",
    "dropped",
    "delivered",
    "deferred",
    "bounce",
    "blocked",
    "open",
    "click",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
    "sms_stop",
)


def provider_events(r: dict[str, Any]) -> Row:
    event = enum(r.get("event"), "event", PROVIDER_EVENTS)
    stamp = r.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        occurred_at = datetime.fromtimestamp(stamp, tz=UTC)  # SendGrid sends Unix seconds
    else:
        occurred_at = ts(stamp, "timestamp")
    return (
        optional(r.get("sg_event_id")),
        event,
        optional(r.get("email")),
        occurred_at,
        optional(r.get("sg_message_id")),
        optional(r.get("message_id")),
        optional(r.get("campaign")),
        json.dumps(r, ensure_ascii=False),
    )


@dataclass(frozen=True)
class Kind:
    name: str
    fmt: str  # "csv" or "jsonl"
    columns: tuple[str, ...]  # raw table columns, in the order `check` returns them
    required_fields: tuple[str, ...]  # CSV header fields / JSON keys the contract requires
    check: Callable[[dict[str, Any]], Row]

    @property
    def table(self) -> str:
        return f"raw.{self.name}"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "customers",
            "csv",
            (
                "customer_id",
                "email",
                "phone",
                "first_name",
                "last_name",
                "locale",
                "customer_type",
                "institution_kind",
                "preferred_store_id",
                "updated_at",
            ),
            ("customer_id", "email", "customer_type", "updated_at"),
            customers,
        ),
        Kind(
            "consents",
            "csv",
            ("customer_id", "channel", "status", "basis", "recorded_at", "source"),
            ("customer_id", "channel", "status", "recorded_at"),
            consents,
        ),
        Kind(
            "products",
            "csv",
            ("sku", "title", "author", "publisher", "image_url", "product_url", "price", "currency", "updated_at"),
            ("sku", "title", "price", "updated_at"),
            products,
        ),
        Kind(
            "stores",
            "csv",
            ("store_id", "name", "email", "phone", "address", "city", "region", "url"),
            ("store_id", "name"),
            stores,
        ),
        Kind("test_group", "csv", ("customer_id",), ("customer_id",), test_group),
        Kind("coupon_codes", "csv", ("pool", "code"), ("pool", "code"), coupon_codes),
        Kind(
            "push_subscriptions",
            "csv",
            ("customer_id", "kind", "endpoint", "p256dh", "auth", "status", "recorded_at"),
            ("customer_id", "kind", "endpoint", "status", "recorded_at"),
            push_subscriptions,
        ),
        Kind(
            "cart_events",
            "jsonl",
            (
                "event_id",
                "event_type",
                "occurred_at",
                "cart_id",
                "customer_id",
                "device",
                "store_id",
                "currency",
                "cart_url",
                "items",
            ),
            ("event_id", "event_type", "occurred_at", "cart_id", "customer_id"),
            cart_events,
        ),
        Kind(
            "orders",
            "jsonl",
            (
                "event_id",
                "order_id",
                "customer_id",
                "cart_id",
                "placed_at",
                "status",
                "store_id",
                "currency",
                "total",
                "items",
            ),
            ("event_id", "order_id", "customer_id", "placed_at", "status", "total", "items"),
            orders,
        ),
        Kind(
            "provider_events",
            "jsonl",
            ("sg_event_id", "event", "email", "occurred_at", "sg_message_id", "message_id", "campaign", "payload"),
            ("event", "timestamp"),
            provider_events,
        ),
    )
}


def kind_of(file_name: str) -> Kind | None:
    """The kind told by the file name's prefix (contract §2), longest prefix first."""
    lower = file_name.lower()
    for name in sorted(KINDS, key=len, reverse=True):
        if lower.startswith(name) and (len(lower) == len(name) or not lower[len(name)].isalnum()):
            return KINDS[name]
    return None
