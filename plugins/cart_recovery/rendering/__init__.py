"""Rendering of messages from Jinja2 templates in `include/templates/` (M1–M7).

Email templates: `email/<template>/{subject.txt.j2, body.html.j2, body.txt.j2}`, extending
`email/_base.html.j2` / `email/_base.txt.j2` (header, footer with sender name, postal address and the
unsubscribe link). Strings per locale in `email/strings.yml`; the stylesheet `email/_styles.css` is inlined
into each HTML template once, when it is loaded (see `inline.py`). HTML autoescapes; undefined names fail.

Context keys a template may use: `locale, t` (the locale's strings), `first_name` ("" when unknown),
`campaign, step, message_id, subject` (HTML only), `items` (each `position, sku, title, author, publisher,
image_url, url, price, quantity`; at most max_items, in cart order), `item_count, more_items_count,
cart_link` (UTM + message id), `cart_value, store` (`name, email, phone, address, city, region, url`, or
None), `coupon` (`code, percent`, or None), `sender` (`name, email, address`), `unsubscribe_url`.

Sender identity, from the environment at run time (local defaults work; production must set them):
- `CR_SENDER_NAME`     the From name and the footer's sender name (M6)
- `CR_SENDER_EMAIL`    the From address (a verified sender at SendGrid)
- `CR_SENDER_ADDRESS`  the postal address in every footer (CASL / CAN-SPAM, M6)
- `CR_PUBLIC_BASE_URL` where `/cart-recovery/unsubscribe` answers (the unsubscribe links, M6)
"""

from cart_recovery.rendering.email import (
    EmailRenderer,
    RenderedEmail,
    SenderIdentity,
    build_email_context,
    sender_identity,
)
from cart_recovery.rendering.formatting import format_money, one_line, tracked_url

__all__ = [
    "EmailRenderer",
    "RenderedEmail",
    "SenderIdentity",
    "build_email_context",
    "format_money",
    "one_line",
    "sender_identity",
    "tracked_url",
]
