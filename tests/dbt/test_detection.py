"""D1–D5 and M2/M4: which carts are abandoned at T, their state and content (one world, one build)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dbt.world import T, World, campaign, d, h, rows

CAMPAIGNS = [campaign()]
WINDOW_END = T - h(1)  # T - abandon_after
WINDOW_START = T - h(25)  # window_end - max_cart_age


@pytest.fixture(scope="module")
def built(warehouse) -> dict[str, Any]:
    with warehouse.connect() as conn:
        w = World(conn, file_name="cart_events_001.jsonl")
        for s in ("s1", "s2"):
            w.store(s)
        for sku in ("a", "b", "c", "x", "y", "z", "sku-1"):
            w.product(sku)

        # plain abandoned cart
        w.customer("plain")
        w.cart("plain-e1", "plain-cart", T - h(3), "plain", [("a", 2, 15.5), ("b", 1, 9.0)])

        # D1: out of order, late, duplicated: the latest by occurred_at wins, whatever the load order
        w.customer("ooo")
        w.cart("ooo-e2", "ooo-cart", T - h(2), "ooo", [("a", 1, 10.0), ("b", 1, 10.0)])
        w.cart("ooo-e2", "ooo-cart", T - h(2), "ooo", [("a", 1, 10.0), ("b", 1, 10.0)])  # duplicate
        w.cart("ooo-e1", "ooo-cart", T - h(5), "ooo", [("a", 1, 10.0)])  # late, older
        # D1: a tie on occurred_at is broken by event_id
        w.customer("tie")
        w.cart("tie-b", "tie-cart", T - h(4), "tie", [("a", 1, 10.0), ("b", 1, 10.0), ("c", 1, 10.0)])
        w.cart("tie-a", "tie-cart", T - h(4), "tie", [("a", 1, 10.0)])
        # D1: deleted carts end; a deletion after T does not count yet (O2)
        w.customer("deleted")
        w.cart("del-e1", "deleted-cart", T - h(5), "deleted")
        w.cart("del-e2", "deleted-cart", T - h(4), "deleted", event_type="cart_deleted")
        w.customer("deleted-later")
        w.cart("dl-e1", "deleted-later-cart", T - h(5), "deleted-later")
        w.cart("dl-e2", "deleted-later-cart", T + h(2), "deleted-later", event_type="cart_deleted")
        # an update after T is not seen at T: the cart is decided on its version at T
        w.customer("future")
        w.cart("fut-e1", "future-cart", T - h(6), "future", [("a", 1, 10.0)])
        w.cart("fut-e2", "future-cart", T + h(1), "future", [("a", 1, 10.0), ("b", 1, 10.0)])
        # empty cart: not abandoned
        w.customer("empty")
        w.cart("empty-e1", "empty-cart", T - h(3), "empty", [])

        # D2 window edges: (T - 25 h, T - 1 h]
        for name, at in {
            "edge-end": WINDOW_END,
            "edge-end-plus": WINDOW_END + d(1 / 86400),
            "edge-start": WINDOW_START,
            "edge-start-plus": WINDOW_START + d(1 / 86400),
        }.items():
            w.customer(name)
            w.cart(f"{name}-e1", f"{name}-cart", at, name)

        # D3: items bought after they were added are removed; the cart value follows
        w.customer("bought-one")
        w.cart(
            "b1-e1",
            "bought-one-cart",
            T - h(3),
            "bought-one",
            [("x", 1, 30.0, T - h(30)), ("y", 2, 5.0, T - h(30))],
        )
        w.order("b1-o1", "bought-one", T - h(20), ["x"])  # after x was added, before the cart's last update
        # an order placed before the item was added does not remove it
        w.customer("bought-before")
        w.cart("bb-e1", "bought-before-cart", T - h(3), "bought-before", [("x", 1, 30.0, T - h(10))])
        w.order("bb-o1", "bought-before", T - h(12), ["x"])
        # cancelled orders do not count
        w.customer("cancelled")
        w.cart("ca-e1", "cancelled-cart", T - h(5), "cancelled", [("x", 1, 30.0)])
        w.order("ca-o1", "cancelled", T - h(4), ["z"], status="cancelled")
        # a completed order after the last activity converts the cart (any SKU)
        w.customer("converted")
        w.cart("cv-e1", "converted-cart", T - h(5), "converted", [("x", 1, 30.0)])
        w.order("cv-o1", "converted", T - h(4), ["z"])
        # ... so does one for the cart, even without the customer
        w.cart("cva-e1", "converted-anon-cart", T - h(5), None, [("x", 1, 30.0)])
        w.order("cva-o1", None, T - h(4), ["z"], cart_id="converted-anon-cart")
        # ... but not one placed after T (the replay of T must not know it)
        w.customer("converted-later")
        w.cart("cl-e1", "converted-later-cart", T - h(5), "converted-later", [("x", 1, 30.0)])
        w.order("cl-o1", "converted-later", T + h(1), ["x"])
        # everything bought: nothing left, converted
        w.customer("all-bought")
        w.cart("ab-e1", "all-bought-cart", T - h(3), "all-bought", [("x", 1, 30.0, T - h(30))])
        w.order("ab-o1", "all-bought", T - h(20), ["x"])

        # D4: anonymous carts and customers without email are counted, never targeted
        w.cart("anon-e1", "anon-cart", T - h(3), None)
        w.customer("no-email", email=None)
        w.cart("ne-e1", "no-email-cart", T - h(3), "no-email")
        w.cart("unknown-e1", "unknown-customer-cart", T - h(3), "never-loaded")

        # D5: several abandoned carts: only the most recent is targeted
        w.customer("multi")
        w.cart("m-e1", "multi-old", T - h(10), "multi")
        w.cart("m-e2", "multi-new", T - h(2), "multi")
        # ... a newer cart that is converted does not supersede
        w.customer("multi2")
        w.cart("m2-e1", "multi2-old", T - h(10), "multi2", [("a", 1, 10.0)])
        w.cart("m2-e2", "multi2-new", T - h(3), "multi2", [("b", 1, 10.0, T - h(30))])
        w.order("m2-o1", "multi2", T - h(20), ["b"])

        # M2: the order items were put in the cart, at most max_items, "and N more"; M4 store; M1 locale
        w.customer("many", locale="de", preferred_store_id="s2")
        w.cart(
            "many-e1",
            "many-cart",
            T - h(3),
            "many",
            [
                ("f", 1, 1.0, T - h(5)),
                ("e", 1, 1.0, T - h(6)),
                ("d", 1, 1.0, T - h(6)),  # same added_at as e: array position breaks the tie
                ("c", 1, 1.0, T - h(7)),
                ("b", 1, 1.0, T - h(8)),
                ("a", 1, 1.0, T - h(9)),
            ],
            store_id="s1",
        )
        w.customer("en-unknown-store", locale="en", preferred_store_id="nowhere")
        w.cart("enu-e1", "en-unknown-store-cart", T - h(3), "en-unknown-store", store_id="s1")

        warehouse.build(T, CAMPAIGNS)
        return {
            "abandoned": {r["cart_id"]: r for r in rows(conn, "select * from marts.abandoned_carts")},
            "exclusions": {r["cart_id"]: r for r in rows(conn, "select * from marts.recipient_exclusions")},
            "eligible": {r["cart_id"]: r for r in rows(conn, "select * from marts.eligible_recipients")},
            "contents": {r["cart_id"]: r for r in rows(conn, "select * from restricted.message_contents")},
        }


def test_d1_latest_update_wins_whatever_the_arrival_order(built):
    ab = built["abandoned"]
    assert ab["ooo-cart"]["cart_version"] == "ooo-e2"
    assert ab["ooo-cart"]["item_count"] == 2
    assert ab["ooo-cart"]["last_activity_at"] == T - h(2)
    assert ab["tie-cart"]["cart_version"] == "tie-b"
    assert ab["tie-cart"]["item_count"] == 3


def test_d1_deleted_cart_ends_but_a_deletion_after_t_is_unseen(built):
    assert "deleted-cart" not in built["abandoned"]
    assert "deleted-later-cart" in built["abandoned"]
    assert built["abandoned"]["future-cart"]["cart_version"] == "fut-e1"
    assert built["abandoned"]["future-cart"]["item_count"] == 1
    assert "empty-cart" not in built["abandoned"]


def test_d2_window_edges(built):
    ab = built["abandoned"]
    assert "edge-end-cart" in ab  # last activity exactly T - abandon_after: abandoned
    assert "edge-end-plus-cart" not in ab  # one second later: still "active", next run's window
    assert "edge-start-cart" not in ab  # exactly window start: yesterday's run had it
    assert "edge-start-plus-cart" in ab


def test_d3_items_bought_after_adding_are_removed(built):
    ab = built["abandoned"]
    assert ab["bought-one-cart"]["item_count"] == 1
    assert float(ab["bought-one-cart"]["cart_value"]) == 10.0
    assert [i["sku"] for i in built["contents"]["bought-one-cart"]["items"]] == ["y"]
    assert ab["bought-before-cart"]["item_count"] == 1  # bought before it was added: stays


def test_d3_conversion_by_order_after_last_activity(built):
    ab = built["abandoned"]
    assert "converted-cart" not in ab
    assert "converted-anon-cart" not in ab
    assert "all-bought-cart" not in ab
    assert "cancelled-cart" in ab  # a cancelled order converts nothing
    assert "converted-later-cart" in ab  # an order after T is unknown at T


def test_d4_anonymous_carts_counted_never_targeted(built):
    ab, ex, el = built["abandoned"], built["exclusions"], built["eligible"]
    for cart in ("anon-cart", "no-email-cart", "unknown-customer-cart"):
        assert cart in ab
        assert ab[cart]["is_targetable"] is False
        assert cart not in el
    assert ex["anon-cart"]["reason"] == "anonymous"
    assert ex["unknown-customer-cart"]["reason"] == "anonymous"
    assert ex["no-email-cart"]["reason"] == "no_email"
    assert ab["plain-cart"]["is_targetable"] is True


def test_d5_only_the_most_recent_cart_is_targeted(built):
    assert built["exclusions"]["multi-old"]["reason"] == "superseded_by_newer_cart"
    assert "multi-new" in built["eligible"]
    # the newer cart is converted (nothing left): it supersedes nothing
    assert "multi2-new" not in built["abandoned"]
    assert "multi2-old" in built["eligible"]


def test_d2_abandoned_cart_columns(built):
    r = built["abandoned"]["plain-cart"]
    assert r["campaign"] == "bookstore_daily"
    assert r["customer_id"] == "plain"
    assert r["item_count"] == 2
    assert float(r["cart_value"]) == 40.0
    assert r["currency"] == "CAD"
    assert r["device"] == "desktop"
    assert r["store_id"] == "s1"
    assert r["cart_url"].endswith("/plain-cart")
    assert r["evaluated_at"] == T


def test_e9_every_abandoned_cart_is_messaged_or_has_exactly_one_reason(built):
    ab, ex, el = built["abandoned"], built["exclusions"], built["eligible"]
    assert set(ab) == set(ex) | set(el)
    assert not set(ex) & set(el)


def test_m2_items_in_the_order_added_at_most_max_items(built):
    c = built["contents"]["many-cart"]
    assert [i["sku"] for i in c["items"]] == ["a", "b", "c", "e"]
    assert [i["position"] for i in c["items"]] == [1, 2, 3, 4]
    assert c["item_count"] == 6
    assert c["more_items_count"] == 2
    assert set(c["items"][0]) >= {"sku", "title", "author", "publisher", "image_url", "product_url", "unit_price"}


def test_m4_store_is_preferred_else_the_carts_and_m1_locale_falls_back(built):
    many = built["contents"]["many-cart"]
    assert many["store_id"] == "s2"
    assert many["locale"] == "fr"  # "de" is not a message language: the campaign default
    other = built["contents"]["en-unknown-store-cart"]
    assert other["store_id"] == "s1"
    assert other["locale"] == "en"
    assert other["email"] == "en-unknown-store@example.org"


def test_eligible_recipients_interface(built):
    r = built["eligible"]["plain-cart"]
    assert r == {
        "campaign": "bookstore_daily",
        "step": 1,
        "channel": "email",
        "customer_id": "plain",
        "cart_id": "plain-cart",
        "cart_version": "plain-e1",
        "decided_at": T,
        "coupon_tier": None,
        "coupon_percent": None,
        "coupon_code": None,
        "scope": "daily",
        "idempotency_key": "bookstore_daily:1:plain-cart:plain-e1",
        "message_id": r["message_id"],
    }
