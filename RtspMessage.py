"""RTSP 1.0 messages as objects <-> bytes (RFC 2326 sections 4, 6, 7, 10.12, 11).

No sockets here. Methods and status codes as enums, the ``RtspError`` family (a status and the
headers its reply carries), case-insensitive multi-valued :class:`Headers`, and the messages
(:class:`Request`, :class:`Response`, :class:`InterleavedFrame`, :class:`MessageError`) with
``serialize()`` writing the wire form (the lab dialect's bare LF and line order included).
Framing bytes into messages is RtspParser.py's; ``RtspParser`` and ``parse_message`` are
re-exported here for the code that imports them from this module.
"""

from __future__ import annotations

import enum
import logging
import re
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

log = logging.getLogger(__name__)

RTSP_VERSION = "RTSP/1.0"


class Method(str, enum.Enum):
    """RTSP methods (RFC 2326 section 10)."""

    OPTIONS = "OPTIONS"
    DESCRIBE = "DESCRIBE"
    ANNOUNCE = "ANNOUNCE"
    SETUP = "SETUP"
    PLAY = "PLAY"
    PAUSE = "PAUSE"
    TEARDOWN = "TEARDOWN"
    GET_PARAMETER = "GET_PARAMETER"
    SET_PARAMETER = "SET_PARAMETER"
    REDIRECT = "REDIRECT"
    RECORD = "RECORD"

    def __str__(self) -> str:
        return self.value


_PHRASES: dict[int, str] = {
    100: "Continue",
    200: "OK",
    201: "Created",
    250: "Low on Storage Space",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Time-out",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    452: "Conference Not Found",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource",
    457: "Invalid Range",
    458: "Parameter Is Read-Only",
    459: "Aggregate operation not allowed",
    460: "Only aggregate operation allowed",
    461: "Unsupported transport",
    462: "Destination unreachable",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
    505: "RTSP Version not supported",
    551: "Option not supported",
}


class Status(enum.IntEnum):
    """RTSP status codes (RFC 2326 section 7.1.1); ``.phrase`` is the reason phrase."""

    CONTINUE = 100
    OK = 200
    CREATED = 201
    LOW_ON_STORAGE_SPACE = 250
    MULTIPLE_CHOICES = 300
    MOVED_PERMANENTLY = 301
    MOVED_TEMPORARILY = 302
    SEE_OTHER = 303
    NOT_MODIFIED = 304
    USE_PROXY = 305
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    PAYMENT_REQUIRED = 402
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    NOT_ACCEPTABLE = 406
    PROXY_AUTHENTICATION_REQUIRED = 407
    REQUEST_TIMEOUT = 408
    GONE = 410
    LENGTH_REQUIRED = 411
    PRECONDITION_FAILED = 412
    REQUEST_ENTITY_TOO_LARGE = 413
    REQUEST_URI_TOO_LARGE = 414
    UNSUPPORTED_MEDIA_TYPE = 415
    PARAMETER_NOT_UNDERSTOOD = 451
    CONFERENCE_NOT_FOUND = 452
    NOT_ENOUGH_BANDWIDTH = 453
    SESSION_NOT_FOUND = 454
    METHOD_NOT_VALID_IN_THIS_STATE = 455
    HEADER_FIELD_NOT_VALID = 456
    INVALID_RANGE = 457
    PARAMETER_IS_READ_ONLY = 458
    AGGREGATE_OPERATION_NOT_ALLOWED = 459
    ONLY_AGGREGATE_OPERATION_ALLOWED = 460
    UNSUPPORTED_TRANSPORT = 461
    DESTINATION_UNREACHABLE = 462
    INTERNAL_SERVER_ERROR = 500
    NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504
    RTSP_VERSION_NOT_SUPPORTED = 505
    OPTION_NOT_SUPPORTED = 551

    @property
    def phrase(self) -> str:
        return _PHRASES[self.value]


def reason_phrase(status: int) -> str:
    """The RFC 2326 reason phrase for ``status`` (a generic one for unknown codes)."""
    phrase = _PHRASES.get(int(status))
    if phrase is not None:
        return phrase
    return {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error",
            5: "Server Error"}.get(int(status) // 100, "Unknown")


# --------------------------------------------------------------------------- errors


class RtspError(Exception):
    """An error that already knows its RTSP status code; :meth:`Response.from_error` turns it
    into the reply, in one place, on either side (role-neutral, like h11's ProtocolError).

    ``headers`` (a :class:`Headers`, multi-valued) are extra fields the reply carries, e.g.
    ``Public`` with a 501, ``Retry-After`` with a 503, one ``WWW-Authenticate`` per
    challenge with a 401. Raise this class with a status, or one of the per-status
    subclasses below (those the parsers raise).
    """

    default_status: Status = Status.INTERNAL_SERVER_ERROR

    def __init__(self, status: int | None = None, message: str = "",
                 headers: Headers | Mapping[str, object] | Iterable[tuple[str, object]] | None = None,
                 explain: bool = False) -> None:
        if status is None:
            status = self.default_status
        try:
            status = Status(status)
        except ValueError:
            status = int(status)
        self.status: Status | int = status
        self.message = message or reason_phrase(status)
        self.headers: Headers = headers.copy() if isinstance(headers, Headers) else Headers(headers)
        self.explain = explain   # the reply carries the message as a text/plain body (a reason to show)
        super().__init__(f"{int(status)} {reason_phrase(status)}: {self.message}")

    def __reduce__(self):  # keep pickling/copying working with the custom __init__
        return (_rebuild_error, (type(self), self.status, self.message, self.headers.items(), self.explain))


def _rebuild_error(cls, status, message, headers, explain=False):
    err = RtspError.__new__(cls)
    RtspError.__init__(err, status, message, headers, explain)
    return err


class _FixedStatusError(RtspError):
    """Base for the per-code subclasses: ``BadRequest("why")``."""

    def __init__(self, message: str = "",
                 headers: Headers | Mapping[str, object] | Iterable[tuple[str, object]] | None = None
                 ) -> None:
        super().__init__(self.default_status, message, headers)


# Only the statuses something raises by class; the rest are RtspError(Status.X, why).
class BadRequest(_FixedStatusError):
    default_status = Status.BAD_REQUEST


class RequestEntityTooLarge(_FixedStatusError):
    default_status = Status.REQUEST_ENTITY_TOO_LARGE


class RequestUriTooLarge(_FixedStatusError):
    default_status = Status.REQUEST_URI_TOO_LARGE


class InvalidRange(_FixedStatusError):
    default_status = Status.INVALID_RANGE


class UnsupportedTransport(_FixedStatusError):
    default_status = Status.UNSUPPORTED_TRANSPORT


class VersionNotSupported(_FixedStatusError):
    default_status = Status.RTSP_VERSION_NOT_SUPPORTED


# --------------------------------------------------------------------------- headers

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ENC = "utf-8"
_ERRORS = "surrogateescape"  # header bytes -> str -> bytes round-trips exactly


class Headers:
    """Case-insensitive, ordered, multi-valued header fields (RFC 2326 section 4.2).

    Names keep the spelling they were given (so a message re-serializes byte-exact);
    lookups ignore case.  Values are ``str`` (ints are accepted and converted).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, object] | Iterable[tuple[str, object]] | None = None
                 ) -> None:
        self._items: list[tuple[str, str]] = []
        if items is None:
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    @staticmethod
    def _check(name: str, value: object) -> tuple[str, str]:
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise ValueError(f"invalid header name {name!r}")
        text = str(value)
        if "\r" in text or "\n" in text or "\0" in text:
            # a CR/LF in a value would let a peer inject headers into our replies
            raise ValueError(f"header {name} value contains a line break or NUL: {text!r}")
        return name, text

    def add(self, name: str, value: object) -> None:
        """Append a field (keeps any existing field of the same name)."""
        self._items.append(self._check(name, value))

    def set(self, name: str, value: object) -> None:
        """Replace every field called ``name`` by one, at the first one's position."""
        name, text = self._check(name, value)
        key = name.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (name, text)
                self._items[i + 1:] = [p for p in self._items[i + 1:] if p[0].lower() != key]
                return
        self._items.append((name, text))

    def setdefault(self, name: str, value: object) -> str:
        if name not in self:
            self.add(name, value)
        return self[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (case-insensitive), or ``default``."""
        key = name.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def remove(self, name: str) -> None:
        """Drop every field called ``name`` (no error if there is none)."""
        key = name.lower()
        self._items = [p for p in self._items if p[0].lower() != key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: object) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.remove(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n.lower() == key for n, _ in self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [n for n, _ in self._items]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return [(n.lower(), v) for n, v in self._items] == \
                   [(n.lower(), v) for n, v in other._items]
        return NotImplemented

    def copy(self) -> "Headers":
        new = Headers()
        new._items = list(self._items)
        return new

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def _write(self, out: list[bytes], eol: bytes, body_len: int) -> None:
        wrote_length = False
        for name, value in self._items:
            if name.lower() == "content-length":
                if wrote_length:
                    continue
                value = str(body_len)  # always the truth, whatever the caller put there
                wrote_length = True
            out.append(name.encode("ascii") + b": " + value.encode(_ENC, _ERRORS) + eol)
        if body_len and not wrote_length:
            out.append(b"Content-Length: " + str(body_len).encode("ascii") + eol)


def _cseq_of(headers: Headers) -> int | None:
    value = headers.get("CSeq")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 10:
        return None
    return int(value)


# --------------------------------------------------------------------------- messages


@dataclass
class Request:
    """An RTSP request (RFC 2326 section 6).

    ``method`` is the method token as sent (compare with :class:`Method`, which is a str
    enum); unknown methods are kept so the server can answer 501.  ``lf_only`` is True when
    the request line ended in a bare LF (the lab dialect); ``serialize`` then writes LF too.
    """

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = RTSP_VERSION
    lf_only: bool = False

    @property
    def cseq(self) -> int | None:
        """The CSeq header as an int, or None when it is missing or not a number."""
        return _cseq_of(self.headers)

    @property
    def known_method(self) -> Method | None:
        """The method as a :class:`Method`, or None for an extension/unknown method."""
        try:
            return Method(self.method)
        except ValueError:
            return None

    def serialize(self) -> bytes:
        """The wire form: CRLF line ends (bare LF when ``lf_only``), Content-Length if a body."""
        eol = b"\n" if self.lf_only else b"\r\n"
        for part in (self.method, self.uri, self.version):
            if not part or any(c in part for c in " \t\r\n\0"):
                raise ValueError(f"invalid request line element {part!r}")
        out = [f"{self.method} {self.uri} {self.version}".encode(_ENC, _ERRORS) + eol]
        self.headers._write(out, eol, len(self.body))
        out.append(eol)
        out.append(bytes(self.body))
        return b"".join(out)


@dataclass
class Response:
    """An RTSP response (RFC 2326 section 7).  ``reason`` None means the standard phrase."""

    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    reason: str | None = None
    version: str = RTSP_VERSION

    @property
    def cseq(self) -> int | None:
        return _cseq_of(self.headers)

    @property
    def phrase(self) -> str:
        return self.reason if self.reason is not None else reason_phrase(self.status)

    def serialize(self, lf_only: bool = False) -> bytes:
        """The wire form, headers in insertion order; CRLF, or bare LF for lab clients, whose
        replies put CSeq and Session on lines 2 and 3 (the lab's client reads them by position)."""
        eol = b"\n" if lf_only else b"\r\n"
        status = int(self.status)
        if not 100 <= status <= 999:
            raise ValueError(f"status code {status} is not three digits")
        phrase = self.phrase
        if "\r" in phrase or "\n" in phrase:
            raise ValueError(f"reason phrase contains a line break: {phrase!r}")
        out = [f"{self.version} {status} {phrase}".encode(_ENC, _ERRORS) + eol]
        headers = self.headers
        if lf_only:
            headers = Headers([(n, v) for first in ("cseq", "session") for n, v in headers.items()
                               if n.lower() == first])
            for name, value in self.headers.items():
                if name.lower() not in ("cseq", "session"):
                    headers.add(name, value)
        headers._write(out, eol, len(self.body))
        out.append(eol)
        out.append(bytes(self.body))
        return b"".join(out)

    @classmethod
    def from_error(cls, error: RtspError, cseq: int | None = None, body: bool = True) -> "Response":
        """The reply for ``error``: its status, CSeq (if known) and its extra headers (every
        field, in order: several WWW-Authenticate stay several); an ``explain`` error's message
        as a text/plain body unless ``body`` is False (a lab client reads 256 bytes at most)."""
        headers = Headers()
        if cseq is not None:
            headers.add("CSeq", cseq)
        for name, value in error.headers.items():
            if name.lower() != "cseq":
                headers.add(name, value)
        response = cls(int(error.status), headers)
        if error.explain and body:
            response.headers.set("Content-Type", "text/plain")
            response.body = error.message.encode("utf-8", "replace") + b"\r\n"
        return response


_INTERLEAVED = struct.Struct("!cBH")
INTERLEAVED_HEADER_SIZE = _INTERLEAVED.size


@dataclass
class InterleavedFrame:
    """Binary data interleaved on the RTSP connection: '$', channel, 16-bit length
    (RFC 2326 section 10.12)."""

    channel: int
    data: bytes

    def serialize(self) -> bytes:
        if not 0 <= self.channel <= 255:
            raise ValueError(f"interleaved channel {self.channel} outside 0..255")
        if len(self.data) > 0xFFFF:
            raise ValueError(f"interleaved frame of {len(self.data)} bytes exceeds 65535")
        return _INTERLEAVED.pack(b"$", self.channel, len(self.data)) + bytes(self.data)


@dataclass
class MessageError:
    """A malformed message the parser skipped; answer ``error.status`` with ``cseq``.

    ``fatal`` means the peer sent more unparseable data than the parser will skip: the
    connection should be closed (the parser ignores everything fed after that).
    ``lf_only`` tells whether the bad request used the lab dialect's bare-LF lines.
    """

    error: RtspError
    cseq: int | None = None
    fatal: bool = False
    lf_only: bool = False

    @property
    def status(self) -> int:
        return int(self.error.status)


Message = Request | Response | InterleavedFrame | MessageError


def __getattr__(name: str) -> object:
    """``from RtspMessage import RtspParser`` still works: the framer lives in RtspParser.py
    (which imports this module, so it is looked up lazily, PEP 562)."""
    if name in ("RtspParser", "parse_message"):
        import RtspParser as framer
        return getattr(framer, name)
    raise AttributeError(f"module 'RtspMessage' has no attribute {name!r}")
