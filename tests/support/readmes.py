"""Core metadata with long descriptions for the project page's tests: each content type, and a hostile README."""

from __future__ import annotations

# Every way a README could smuggle script into the page: elements, handlers, script URLs in links, images
# and reference definitions, raw HTML blocks.
HOSTILE_MARKDOWN = """# Shiny

Some **bold** text.

<script>alert("readme")</script>

<img src="x" onerror="alert('img')">

[click me](javascript:alert('link'))

[ref link][evil]

<a href="javascript:alert('raw')">raw anchor</a>

<iframe src="https://example.invalid/"></iframe>

[evil]: javascript:alert('ref')
"""


def readme_metadata(
    name: str, version: str, body: str, content_type: str | None = "text/markdown", headers: tuple[str, ...] = ()
) -> str:
    """METADATA with `body` as the long description (in the message body, as setuptools and hatchling write it)."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Summary: A README test", *headers]
    if content_type is not None:
        lines.append(f"Description-Content-Type: {content_type}")
    return "\n".join(lines) + "\n\n" + body


def hostile_metadata(name: str, version: str) -> str:
    """A hostile Markdown README, with author, license, classifiers, requirements and a script URL among the links."""
    return readme_metadata(
        name,
        version,
        HOSTILE_MARKDOWN,
        headers=(
            "Author: Mallory",
            "Author-email: mallory@example.invalid",
            "License: MIT",
            "Classifier: Topic :: Software Development",
            "Requires-Dist: needed>=1.0",
            'Requires-Dist: absent-dep; extra == "x"',
            "Project-URL: Source, https://example.invalid/src",
            "Project-URL: Evil, javascript:alert('url')",
            "Home-page: UNKNOWN",
        ),
    )
