"""A legacy upload's multipart body read in one pass: its text fields kept, its file written straight to the spool.

webob parses a form through `cgi` and `email` and copies a file part to a temporary file of its own, which the
upload then copied to the spool: about a tenth of an upload's time, and one more file created per upload.
`multipart`'s push parser gives the file's bytes as they arrive, so they are hashed and spooled once.
"""

from __future__ import annotations

import codecs
import email.message
from collections.abc import Iterator
from dataclasses import dataclass, field

import multipart
from pyramid.request import Request

from pypicloud_lite.errors import InvalidInput, InvalidUpload
from pypicloud_lite.spool import CHUNK, SpoolWriter

# The fields an upload reads; the others (description, classifiers, ...) are checked as UTF-8 and dropped.
WANTED = frozenset(
    {
        ":action",
        "protocol_version",
        "name",
        "version",
        "filetype",
        "summary",
        "requires_python",
        "md5_digest",
        "sha256_digest",
        "blake2_256_digest",
    }
)
# A kept field longer than this is no field of an upload (a summary is one line, a digest 64 characters).
MAX_FIELD_BYTES = 64 * 1024
# twine sends about 25 parts; a form of thousands is not an upload.
MAX_PARTS = 1000
FILE_FIELD = "content"


@dataclass
class UploadBody:
    """What a legacy upload's body held: its kept text fields (the last of a repeated name) and its file's name."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    reading: _Part | None = None  # the part a chunk ended in

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


def read_upload(request: Request, writer: SpoolWriter) -> UploadBody:
    """Parse the request's multipart body, writing the `content` file part to `writer`.

    Malformed bodies are InvalidInput ("The form body cannot be read"), as webob's complaints were; so is a
    body that ends before its closing boundary. Fields are UTF-8, all of them (as webob decoded them).
    """
    _, options = multipart.parse_options_header(request.headers.get("Content-Type", ""))
    declared = options.get("charset")
    if declared and declared.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise InvalidInput(f"Form bodies must be UTF-8, not charset={declared}.")
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidInput("The form body cannot be read: its Content-Type names no boundary.")
    body = UploadBody()
    try:
        with multipart.PushMultipartParser(boundary, max_segment_count=MAX_PARTS) as parser:
            stream = request.body_file
            while True:
                chunk = stream.read(CHUNK)
                _read_events(parser.parse(chunk), body, writer)
                if not chunk:  # the end: the parser has checked the body was complete
                    break
    except multipart.MultipartError as exc:
        raise InvalidInput(f"The form body cannot be read: {exc}") from exc
    return body


class _Part:
    """The part being read: the file (to the spool), a kept field, or one only checked and dropped."""

    def __init__(self, segment: multipart.MultipartSegment, body: UploadBody) -> None:
        self.name = segment.name or ""
        self.is_file = segment.filename is not None
        self.is_content = self.is_file and self.name == FILE_FIELD and bool(segment.filename)
        if self.is_content:
            if body.filename is not None:
                raise InvalidUpload("The upload has more than one file in its 'content' field.")
            body.filename = _filename_as_sent(segment)
        self.kept = bytearray() if not self.is_file and self.name in WANTED else None
        self.decoder: codecs.IncrementalDecoder | None = None

    def text(self, chunk: bytes | bytearray, final: bool = False) -> None:
        """A chunk of a text field: kept (decoded at its end) if the upload reads it, else only checked."""
        if self.kept is not None:
            if len(self.kept) + len(chunk) > MAX_FIELD_BYTES:
                raise InvalidUpload(f"The form field {self.name!r} is longer than {MAX_FIELD_BYTES} bytes.")
            self.kept += chunk
            return
        if self.decoder is None:
            self.decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            self.decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            raise InvalidInput("A form field is not valid UTF-8.") from exc


def _utf8(value: bytearray) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("A form field is not valid UTF-8.") from exc


def _filename_as_sent(segment: multipart.MultipartSegment) -> str:
    """The file's name as the client wrote it, quotes and all (as `cgi` read it for webob).

    `multipart` forgives a malformed Content-Disposition by cutting the name at a stray quote, and turns a
    Windows path into its last part: `x.whl"><script>.whl` would be stored as `x.whl`. The name must
    be refused as sent instead.
    """
    raw = segment.header("Content-Disposition", "")
    if raw == f'form-data; name="{FILE_FIELD}"; filename="{segment.filename}"' and '"' not in segment.filename:
        return str(segment.filename)  # as twine, uv and requests write it: nothing to read again
    header = email.message.Message()
    header["Content-Disposition"] = raw
    filename = header.get_filename()
    return filename if isinstance(filename, str) and filename else str(segment.filename)


def _read_events(events: Iterator[object], body: UploadBody, writer: SpoolWriter) -> None:
    part: _Part | None = body.reading
    for event in events:
        if isinstance(event, multipart.MultipartSegment):
            part = _Part(event, body)
        elif part is None:
            continue
        elif event is None:
            if not part.is_file:
                part.text(b"", final=True)
                if part.kept is not None:
                    body.fields[part.name] = _utf8(part.kept)
            part = None
        elif part.is_content:
            writer.write(event)  # type: ignore[arg-type]
        elif not part.is_file:
            part.text(event)  # type: ignore[arg-type]
        # Another file part (a signature) is dropped as it arrives.
    body.reading = part
