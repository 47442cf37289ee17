"""The email renderer: subject, HTML body and plain-text body from three Jinja2 templates (M1–M7)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2

from cart_recovery import TEMPLATES_DIR
from cart_recovery.rendering.formatting import add_params, format_money, one_line, tracking_params
from cart_recovery.rendering.inline import inline_template_source

if TYPE_CHECKING:
    from cart_recovery.campaigns import Campaign

log = logging.getLogger(__name__)

LOCALES = ("fr", "en")

# Local defaults: they work for the demo and the tests; a production deployment must set all four (M6).
_DEFAULTS = {
    "CR_SENDER_NAME": "Les libraires (démo locale)",
    "CR_SENDER_EMAIL": "rappels@libraires.example",
    "CR_SENDER_ADDRESS": "1234 rue Saint-Denis, Montréal (Québec) H2X 3J6, Canada",
    "CR_PUBLIC_BASE_URL": "http://localhost:8080",
}


@dataclass(frozen=True)
class SenderIdentity:
    name: str
    email: str
    address: str
    public_base_url: str


def sender_identity() -> SenderIdentity:
    """The sender (M6) from the environment, with working local defaults (read at run time)."""
    missing = [k for k in _DEFAULTS if not os.environ.get(k)]
    if missing:
        log.info("sender identity: local defaults for %s (set them in production)", ", ".join(missing))
    get = lambda k: os.environ.get(k) or _DEFAULTS[k]  # noqa: E731
    return SenderIdentity(
        name=get("CR_SENDER_NAME"),
        email=get("CR_SENDER_EMAIL"),
        address=get("CR_SENDER_ADDRESS"),
        public_base_url=get("CR_PUBLIC_BASE_URL").rstrip("/"),
    )


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def _fmt(template: str, **values: Any) -> str:
    # strings.yml placeholders ({name}, {count}); the result is escaped as a whole in HTML
    return str(template).format(**values)


class _Environment(jinja2.Environment):
    """Jinja2 with two shortcuts for our contexts, which are plain dicts (measured: a fifth of a render):
    `x.name` on a dict looks the key up first (Jinja tries the attribute first, and for a dict that raises
    AttributeError before it falls back to the key); our templates never call dict methods."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class _InliningLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader whose `.html.j2` sources come back with the stylesheet inlined (once, at load)."""

    def __init__(self, root: Path, css: str) -> None:
        super().__init__(str(root))
        self.css = css

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = super().get_source(environment, template)
        if self.css and template.endswith(".html.j2"):
            source = inline_template_source(source, self.css)
        return source, filename, uptodate


def _text(value: Any) -> str:
    # None from the marts renders as nothing, not "None" (StrictUndefined only guards missing keys)
    return "" if value is None else str(value)


def build_email_context(
    row: Mapping[str, Any],
    campaign: Campaign,
    *,
    message_id: str,
    unsubscribe_url: str,
    sender: SenderIdentity,
    channel: str = "email",
) -> dict[str, Any]:
    """The template context for one message, from a `restricted.message_contents` row joined with its
    `marts.eligible_recipients` row (docs/INTERFACES.md). Keys are documented in the templates' README-like
    docstring of `cart_recovery.rendering`."""
    locale = _text(row.get("locale")).lower()[:2]
    if locale not in LOCALES:
        locale = campaign.default_locale
    step = int(row["step"])
    currency = row.get("currency")

    params = tracking_params(campaign=campaign.name, step=step, channel=channel, message_id=message_id)
    encoded = urlencode(params)  # once per message, not once per link

    def link(url: Any) -> str:
        return add_params(_text(url), params, encoded)

    raw_items = sorted(row.get("items") or [], key=lambda i: i.get("position") or 0)
    shown = raw_items[: campaign.max_items]  # M2 (the mart already cuts; kept here in case a setting differs)
    items = [
        {
            "position": i.get("position"),
            "sku": _text(i.get("sku")),
            "title": _text(i.get("title")) or _text(i.get("sku")),
            "author": _text(i.get("author")),
            "publisher": _text(i.get("publisher")),
            "image_url": _text(i.get("image_url")),
            "url": link(i.get("product_url") or row.get("cart_url")),
            "price": format_money(i.get("unit_price"), currency, locale),
            "quantity": int(i.get("quantity") or 1),
        }
        for i in shown
    ]
    item_count = int(row.get("item_count") or len(raw_items))
    if row.get("more_items_count") is not None:  # the mart's count, plus any item cut here
        more = int(row["more_items_count"]) + len(raw_items) - len(items)
    else:
        more = max(item_count - len(items), 0)
    store = None
    if row.get("store_name"):
        store = {k: _text(row.get(f"store_{k}")) for k in ("id", "name", "email", "phone", "address", "city", "region")}
        store["url"] = link(row.get("store_url")) if row.get("store_url") else ""
    coupon = None
    if row.get("coupon_code"):  # M5
        pct = row.get("coupon_percent")
        coupon = {"code": _text(row["coupon_code"]), "percent": _percent(pct)}
    return {
        "locale": locale,
        "first_name": _text(row.get("first_name")).strip(),
        "campaign": campaign.name,
        "step": step,
        "message_id": message_id,
        "items": items,
        "item_count": item_count,
        "more_items_count": more,
        "cart_link": link(row.get("cart_url")),
        "cart_value": format_money(row.get("cart_value"), currency, locale),
        "store": store,
        "coupon": coupon,
        "sender": {"name": sender.name, "email": sender.email, "address": sender.address},
        "unsubscribe_url": unsubscribe_url,
    }


def _percent(value: Any) -> str:
    if value is None:
        return ""
    s = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return s


class EmailRenderer:
    """Renders `email/<template>/{subject.txt.j2, body.html.j2, body.txt.j2}`; thread-safe once built.

    Per-locale files win when present (`email/<template>/<locale>/body.html.j2`), else the shared files use
    the strings of `email/strings.yml`.
    """

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, inline_css: bool = True) -> None:
        import yaml

        self.templates_dir = Path(templates_dir)
        css_path = self.templates_dir / "email" / "_styles.css"
        css = css_path.read_text(encoding="utf-8") if inline_css and css_path.exists() else ""
        self.env = _Environment(
            loader=_InliningLoader(self.templates_dir, css),
            # a plain dict, not an LRU cache with a lock: `{% extends %}` looks the base up at every render,
            # and the templates are a handful, loaded once
            cache_size=-1,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "xml", "html.j2"), default_for_string=True, default=False
            ),
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
            trim_blocks=False,
        )
        self.env.filters["fmt"] = _fmt
        self.strings: dict[str, dict[str, str]] = yaml.safe_load(
            (self.templates_dir / "email" / "strings.yml").read_text(encoding="utf-8")
        )
        self._cache: dict[tuple[str, str, str], jinja2.Template] = {}
        self._lock = threading.Lock()

    def template(self, name: str, locale: str, part: str) -> jinja2.Template:
        key = (name, locale, part)
        tpl = self._cache.get(key)
        if tpl is None:
            with self._lock:
                tpl = self._cache.get(key)
                if tpl is None:
                    tpl = self.env.select_template([f"email/{name}/{locale}/{part}", f"email/{name}/{part}"])
                    self._cache[key] = tpl
        return tpl

    def render(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        locale = context["locale"]
        ctx = {**context, "t": self.strings[locale]}
        subject = one_line(self.template(template, locale, "subject.txt.j2").render(ctx))
        ctx["subject"] = subject
        html = self.template(template, locale, "body.html.j2").render(ctx)
        text = self.template(template, locale, "body.txt.j2").render(ctx)
        return RenderedEmail(subject=subject, html=html, text=text.strip() + "\n")
