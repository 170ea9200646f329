"""A project's long description as PyPI shows it: readme_renderer for its content type, through its sanitizer."""

from __future__ import annotations

from email.message import Message
from functools import lru_cache

import readme_renderer.markdown
import readme_renderer.rst
import readme_renderer.txt
from markupsafe import Markup

# As Warehouse: no content type means reStructuredText, an unknown one plain text.
_RENDERERS = {
    "": readme_renderer.rst,
    "text/x-rst": readme_renderer.rst,
    "text/markdown": readme_renderer.markdown,
    "text/plain": readme_renderer.txt,
}


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """The media type (lower case) and its parameters, as `text/markdown; variant=GFM; charset=UTF-8` spells them."""
    if not value or not value.strip():
        return "", {}
    message = Message()
    message["Content-Type"] = value
    params = {key.lower(): str(val) for key, val in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


@lru_cache(maxsize=64)
def render_description(text: str | None, content_type: str | None) -> Markup | None:
    """Sanitized HTML for the description (None for none); markup that does not render falls back to plain text.

    Cached by value: docutils takes tens of milliseconds on a long README, and a page shows the same one each time.
    """
    if text is None:
        return None
    kind, params = _content_type(content_type)
    renderer = _RENDERERS.get(kind, readme_renderer.txt)
    options = {"variant": params["variant"]} if renderer is readme_renderer.markdown and "variant" in params else {}
    rendered = renderer.render(text, **options)
    if rendered is None:
        rendered = readme_renderer.txt.render(text)
    # readme_renderer's output has been through its sanitizer (nh3): safe to place in the page as it is.
    return Markup(rendered)  # noqa: S704
