"""CSS inlined once per template, at load time, not once per message (PLATFORM.md: ~3,200 renders/s when
inlining each message, ~7,500/s when the template is inlined once).

How: every Jinja construct of the template source is swapped for an inert marker (`@@CR12@@`), the source is
parsed and inlined by css_inline like any HTML, and the markers are swapped back. The result is a Jinja
template whose static markup already carries its `style=""` attributes.

What this asks of an HTML template (the rendering test checks the shipped ones):
- classes are static: a selector cannot match a class computed by Jinja;
- Jinja statements sit outside tables or inside cells, never between `<table>`/`<tr>`/`<td>` tags (an HTML
  parser moves stray text out of tables), and never inside `<head>` except in `<title>`.
"""

from __future__ import annotations

import re

# Jinja comments are dropped before parsing (text before <!DOCTYPE> would change how the page parses).
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_MARKER = re.compile(r"@@CR(\d+)@@")


def inline_template_source(source: str, css: str) -> str:
    """The template source with `css` inlined into its static markup; Jinja constructs are kept verbatim."""
    import css_inline

    source = _COMMENT.sub("", source)
    saved: list[str] = []

    def protect(m: re.Match[str]) -> str:
        saved.append(m.group(0))
        return f"@@CR{len(saved) - 1}@@"

    protected = _JINJA.sub(protect, source)
    if re.search(r"<html[\s>]", protected, re.IGNORECASE):
        # a whole document (the base layout): its own <style> blocks apply too, and are then removed
        inlined = css_inline.CSSInliner(extra_css=css).inline(protected)
    else:
        # a child template's blocks: a fragment, never wrapped in <html><body>
        inlined = css_inline.inline_fragment(protected, css)
    restored = _MARKER.sub(lambda m: saved[int(m.group(1))], inlined)
    if len(_JINJA.findall(restored)) != len(saved):
        raise ValueError("CSS inlining lost or moved a Jinja construct: check the template's layout rules")
    return restored
