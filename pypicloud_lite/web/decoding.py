"""The request class: a body, form or query string that cannot be decoded is a 400 with the reason, not a 500."""

from __future__ import annotations

import json
from typing import Any

from pyramid.request import Request
from webob.multidict import GetDict, MultiDict, NoVars

from pypicloud_lite.errors import InvalidInput


class DecodingRequest(Request):  # type: ignore[misc]  # pyramid has no type hints
    """Pyramid's request, with webob's lazy parsers translating what malformed input makes them raise.

    webob raises ValueError for a multipart body without a (valid) boundary, UnicodeDecodeError for
    bytes that are not UTF-8 and DeprecationWarning (raised, not warned) for a form whose Content-Type
    names a charset other than UTF-8; the JSON parser recurses once per nesting level. Those are the caller's
    mistakes, so they are InvalidInput (web/errors.py answers 400), raised where the view reads the input.
    """

    @property
    def GET(self) -> GetDict:
        try:
            return super().GET
        except UnicodeDecodeError as exc:
            raise InvalidInput("The query string is not valid UTF-8.") from exc

    @property
    def POST(self) -> MultiDict | NoVars:
        try:
            return super().POST
        except UnicodeDecodeError as exc:
            raise InvalidInput("A form field is not valid UTF-8.") from exc
        except DeprecationWarning as exc:
            raise InvalidInput(f"Form bodies must be UTF-8, not charset={self.charset}.") from exc
        except (ValueError, TypeError, IndexError) as exc:
            # cgi.FieldStorage's complaints: no or an invalid boundary, a malformed part header.
            raise InvalidInput(f"The form body cannot be read: {exc}") from exc

    @property
    def json_body(self) -> Any:
        try:
            body = super().json_body
            # JSON may escape half a UTF-16 pair ("\ud800"): a str no database, hash or page can encode.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("The request body is not valid UTF-8.") from exc
        except UnicodeEncodeError as exc:
            raise InvalidInput("The request body's JSON holds an unpaired surrogate escape (\\uD800-\\uDFFF).") from exc
        except ValueError as exc:
            raise InvalidInput("The request body is not valid JSON.") from exc
        except RecursionError as exc:
            raise InvalidInput("The request body's JSON is nested too deeply.") from exc
        return body
