"""The RTSP framer: bytes as TCP delivers them in, whole messages out (RFC 2326 sections 4, 6,
7, 10.12).

No sockets here. :class:`RtspParser` is fed whatever bytes a TCP read returned and hands back
complete :class:`RtspMessage.Request`, ``Response``, ``InterleavedFrame`` objects, or
``MessageError`` for a message it had to skip (the connection survives: the parser
resynchronises at the end of the bad header block and skips its body), within limits on line
length, header count and body size.

The classic course-lab client ("lab dialect") ends its lines with a bare LF and sends each
request in one ``send()`` with neither a final newline nor a blank line. Such a request can never
be framed by the byte stream alone; the server asks :meth:`RtspParser.has_unterminated_lf` after
a read and, when no more data follows, calls :meth:`RtspParser.finish_unterminated`.
"""

from __future__ import annotations

import enum
import logging
import re

from RtspMessage import (_ENC, _ERRORS, _INTERLEAVED, _TOKEN_RE, RTSP_VERSION, BadRequest, Headers, InterleavedFrame,
                         Message, MessageError, Request, RequestEntityTooLarge, RequestUriTooLarge, Response,
                         RtspError, VersionNotSupported)

log = logging.getLogger("RtspMessage")   # the parser's log lines keep their name


class _State(enum.Enum):
    START = "start"              # between messages
    HEADERS = "headers"          # start line read, reading header lines
    BODY = "body"                # waiting for Content-Length bytes
    SKIP_BODY = "skip_body"      # discarding the body of a rejected message
    DISCARD_LINE = "discard"     # discarding the rest of an over-long or binary line
    CLOSED = "closed"            # fatal error reported; everything is ignored


_REQUEST_LINE_RE = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]+(\S+)[ \t]+(\S+)$")
_STATUS_LINE_RE = re.compile(r"^(RTSP/\d+\.\d+)[ \t]+(\d{3})(?:[ \t]+(.*))?$")
_VERSION_RE = re.compile(r"^[A-Za-z]+/\d+\.\d+$")
_REQUEST_PREFIX_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]")
_CSEQ_LINE_RE = re.compile(rb"^[ \t]*cseq[ \t]*:[ \t]*(\d{1,10})[ \t]*\r?$", re.IGNORECASE)
# A start line must be printable ASCII: anything else is garbage that can never
# become a message (TLS hellos, stray RTP, a client speaking some other protocol).
_BAD_START_BYTE_RE = re.compile(rb"[^\t\x20-\x7e\r]|\r(?!\n|$)")


class RtspParser:
    """Incremental RTSP framer (RFC 2326 sections 4, 6, 7, 10.12).

    ``feed(data)`` returns every message completed by ``data``.  Limits: ``max_line``
    bytes per line (a longer request line -> 414, other lines -> 400), ``max_headers``
    header fields (-> 400), ``max_body`` bytes of Content-Length body (-> 413; the body is
    skipped as it arrives).  A rejected message is returned as :class:`MessageError` once
    its header block has ended, so the connection survives.  A start line holding bytes
    that are not printable ASCII is garbage: :class:`MessageError` 400 at once, and the
    rest of that line is dropped.  When more than ``max_junk`` bytes have been dropped
    without a good message in between, a ``fatal`` MessageError is returned and the
    parser stops (the server should close the connection).

    ``role`` is "server" or "client"; both roles parse requests, responses and '$' frames
    (a server can receive RTCP over interleaved channels, a client can receive requests
    such as GET_PARAMETER or ANNOUNCE from the server).  In the server role only requests
    count as lab-dialect unterminated messages; the client role also finishes a classic
    lab server's unterminated response.
    """

    def __init__(self, max_line: int = 4096, max_headers: int = 64, max_body: int = 65536,
                 role: str = "server", max_junk: int | None = None) -> None:
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        if max_line < 16 or max_headers < 1 or max_body < 0:
            raise ValueError("parser limits too small")
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_body = max_body
        self.role = role
        self.max_junk = max_junk if max_junk is not None else max(16 * max_line, 65536)
        self._buf = bytearray()
        self._state = _State.START
        self._scan = 0              # bytes of _buf already searched for a line break
        self._junk = 0              # bytes dropped since the last good message
        self._reset_message()

    # -- per-message state

    def _reset_message(self) -> None:
        self._start: Request | Response | None = None
        self._headers = Headers()
        self._header_count = 0
        self._error: RtspError | None = None
        self._cseq: int | None = None
        self._lf_only = False
        self._all_lf = True
        self._remaining = 0          # BODY / SKIP_BODY byte count
        self._after_discard = _State.START
        self._discarded = 0
        self._clean_bytes = 0        # bytes of this message read before it went bad

    @property
    def closed(self) -> bool:
        """True after a fatal MessageError: everything fed since is ignored."""
        return self._state is _State.CLOSED

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (bounded by the limits)."""
        return len(self._buf)

    # -- public API

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return every message (or error) they complete, in order."""
        if self._state is _State.CLOSED:
            return []
        self._buf += data
        out: list[Message] = []
        while self._step(out):
            if self._state is _State.CLOSED:
                self._buf.clear()
                break
        return out

    def has_unterminated_lf(self) -> bool:
        """True when the buffer ends in a lab-dialect request with no blank line.

        That is: a well-formed request line ended by a bare LF, at least one header line,
        every line so far ended by a bare LF, no Content-Length, and nothing after it but
        possibly one last header line without its newline.  A CRLF client is never
        affected (its request line ends in CRLF).
        """
        wanted = (Request,) if self.role == "server" else (Request, Response)
        if self._unterminated_bad_lf():
            return True
        if (self._state is not _State.HEADERS
                or not isinstance(self._start, wanted) or self._error is not None
                or not self._lf_only or not self._all_lf or "Content-Length" in self._headers):
            return False
        tail = bytes(self._buf)
        if not tail:
            return self._header_count > 0
        if b"\r" in tail or b"\n" in tail:
            return False
        if self._header_count >= self.max_headers:
            return False
        parsed = self._parse_header_line(tail, dry_run=True)
        return parsed is not None and parsed[0].lower() != "content-length"

    def _unterminated_bad_lf(self) -> bool:
        """A bare-LF message already rejected (e.g. the broken lab form ``SETUP f\n1\n RTSP/1.0
        RTP/UDP 5000``) that will never get its blank line: nothing that follows can save it,
        so it may be answered (400) at once rather than after the request timeout."""
        if (self._state is not _State.HEADERS or self._error is None or not self._lf_only
                or not self._all_lf or isinstance(self._start, Response)):
            return False
        return b"\r" not in self._buf and b"\n" not in self._buf

    def finish_unterminated(self) -> Request | MessageError | None:
        """Complete the lab-dialect request :meth:`has_unterminated_lf` found, or None.

        A bare-LF request that is already known to be malformed comes back as its
        :class:`MessageError` (a 400 to send now).  In the client role this can also return
        a :class:`Response` (a classic lab server's reply has no blank line either).
        """
        if self._unterminated_bad_lf():
            error = MessageError(self._error, self._cseq, lf_only=True)  # type: ignore[arg-type]
            self._buf.clear()
            self._scan = 0
            self._message_done(good=False)
            return error
        if not self.has_unterminated_lf():
            return None
        if self._buf:
            self._parse_header_line(bytes(self._buf))
            self._buf.clear()
            self._scan = 0
        message = self._start
        assert message is not None
        message.headers = self._headers
        if isinstance(message, Request):
            message.lf_only = True
        self._message_done()
        return message  # type: ignore[return-value]

    # -- the machine

    def _message_done(self, good: bool = True) -> None:
        self._reset_message()
        self._state = _State.START
        if good:
            self._junk = 0

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._scan = 0

    def _next_line(self) -> tuple[bytes, bool] | None:
        """Pop one line (without its ending) and whether it ended in bare LF."""
        idx = self._buf.find(b"\n", self._scan)
        if idx < 0:
            self._scan = len(self._buf)
            return None
        line = bytes(self._buf[:idx])
        self._drop(idx + 1)
        if self._error is None:
            self._clean_bytes += idx + 1
        if line.endswith(b"\r"):
            return line[:-1], False
        return line, True

    def _add_junk(self, n: int, out: list[Message]) -> bool:
        """Count dropped bytes; report fatal and close when over the limit."""
        self._junk += n
        if self._junk > self.max_junk:
            log.warning("closing parser: %d bytes of unparseable data", self._junk)
            out.append(MessageError(BadRequest("too much unparseable data"), self._cseq,
                                    fatal=True, lf_only=self._lf_only))
            self._state = _State.CLOSED
            return False
        return True

    def _step(self, out: list[Message]) -> bool:
        """Make one unit of progress; False when more data is needed."""
        state = self._state
        if state is _State.START:
            return self._step_start(out)
        if state is _State.HEADERS:
            return self._step_headers(out)
        if state is _State.BODY:
            if len(self._buf) < self._remaining:
                return False
            body = bytes(self._buf[:self._remaining])
            self._drop(self._remaining)
            self._emit(out, body)
            return True
        if state is _State.SKIP_BODY:
            n = min(self._remaining, len(self._buf))
            self._drop(n)
            self._remaining -= n
            if self._remaining:
                return False
            self._message_done(good=False)
            return True
        if state is _State.DISCARD_LINE:
            idx = self._buf.find(b"\n")
            if idx < 0:
                n = len(self._buf)
                self._drop(n)
                self._discarded += n
                return self._add_junk(n, out) and False
            self._drop(idx + 1)
            self._discarded += idx + 1
            if not self._add_junk(idx + 1, out):
                return False
            self._state = self._after_discard
            return True
        return False

    def _step_start(self, out: list[Message]) -> bool:
        buf = self._buf
        if not buf:
            return False
        if buf[0] == 0x24:  # '$': RFC 2326 10.12 interleaved binary data
            if len(buf) < 4:
                return False
            _, channel, length = _INTERLEAVED.unpack_from(buf)
            if len(buf) < 4 + length:
                return False
            data = bytes(buf[4:4 + length])
            self._drop(4 + length)
            out.append(InterleavedFrame(channel, data))
            self._junk = 0
            return True
        # Empty lines between messages are allowed (and used as keepalives).
        if buf[0] == 0x0A:
            self._drop(1)
            return True
        if buf[0] == 0x0D:
            if len(buf) < 2:
                return False
            if buf[1] == 0x0A:
                self._drop(2)
                return True
        checked = max(0, self._scan - 1)  # bytes before this were clean already
        end = buf.find(b"\n", self._scan)
        head = bytes(buf[checked:end if end >= 0 else min(len(buf), self.max_line + 1)])
        if _BAD_START_BYTE_RE.search(head):
            out.append(MessageError(BadRequest("binary data where a request line was expected")))
            return self._begin_discard(_State.START, out)
        if end < 0:
            self._scan = len(buf)
            if len(buf) > self.max_line:
                self._start_line_too_long()
                return self._begin_discard(_State.HEADERS, out)
            return False
        if end - (1 if end and buf[end - 1] == 0x0D else 0) > self.max_line:
            self._start_line_too_long()
            self._after_discard = _State.HEADERS
            self._state = _State.DISCARD_LINE
            return True
        line, lf = self._next_line()  # type: ignore[misc]
        self._lf_only = lf
        self._all_lf = lf
        self._parse_start_line(line.decode("ascii").strip(" \t"))
        self._state = _State.HEADERS
        return True

    def _start_line_too_long(self) -> None:
        self._lf_only = self._all_lf = False
        if _REQUEST_PREFIX_RE.match(self._buf) and not self._buf.startswith(b"RTSP/"):
            self._error = RequestUriTooLarge(f"request line longer than {self.max_line} bytes")
        else:
            self._error = BadRequest(f"start line longer than {self.max_line} bytes")

    def _begin_discard(self, then: _State, out: list[Message]) -> bool:
        self._after_discard = then
        self._state = _State.DISCARD_LINE
        return True

    def _parse_start_line(self, line: str) -> None:
        m = _STATUS_LINE_RE.match(line)
        if m:
            self._start = Response(int(m.group(2)), Headers(), reason=m.group(3) or "",
                                   version=m.group(1))
            return
        m = _REQUEST_LINE_RE.match(line)
        if not m:
            self._error = BadRequest(f"malformed request line {line[:80]!r}")
            return
        method, uri, version = m.groups()
        if version != RTSP_VERSION:
            if _VERSION_RE.match(version):
                self._error = VersionNotSupported(f"version {version} is not supported")
            else:
                self._error = BadRequest(f"malformed protocol version {version[:40]!r}")
            return
        self._start = Request(method, uri, Headers(), version=version)

    def _step_headers(self, out: list[Message]) -> bool:
        buf = self._buf
        end = buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(buf)
            if len(buf) > self.max_line:
                self._fail(BadRequest(f"header line longer than {self.max_line} bytes"))
                self._all_lf = False
                return self._begin_discard(_State.HEADERS, out)
            return False
        if end - (1 if end and buf[end - 1] == 0x0D else 0) > self.max_line:
            self._fail(BadRequest(f"header line longer than {self.max_line} bytes"))
            self._all_lf = False
            return self._begin_discard(_State.HEADERS, out)
        line, lf = self._next_line()  # type: ignore[misc]
        self._all_lf = self._all_lf and lf
        if line:
            self._parse_header_line(line)
            # an endless header block of a message already rejected is unbounded junk
            return self._error is None or self._add_junk(len(line) + 1, out)
        return self._end_of_headers(out)

    def _fail(self, error: RtspError) -> None:
        if self._error is None:
            self._error = error

    def _parse_header_line(self, line: bytes, dry_run: bool = False) -> tuple[str, str] | None:
        """Parse one header line into ``self._headers``; record an error if malformed."""
        m = _CSEQ_LINE_RE.match(line)
        if m and not dry_run and self._cseq is None:
            self._cseq = int(m.group(1))  # remembered even if the message is rejected
        if line[:1] in (b" ", b"\t"):
            # continuation line (RFC 2326 4.2 / RFC 2616 2.2 LWS): fold into the last value
            if dry_run:
                return None  # a lab request never ends in a folded line
            if not len(self._headers):
                self._fail(BadRequest("continuation line before any header"))
                return None
            name, value = self._headers._items[-1]
            extra = line.strip().decode(_ENC, _ERRORS)
            self._headers._items[-1] = (name, f"{value} {extra}" if value else extra)
            return name, value
        name_b, sep, value_b = line.partition(b":")
        name = name_b.strip().decode("ascii", "replace")
        if not sep or not _TOKEN_RE.match(name):
            if not dry_run:
                self._fail(BadRequest(f"malformed header line {line[:60]!r}"))
            return None
        value = value_b.strip(b" \t\r").decode(_ENC, _ERRORS)
        if "\0" in value:
            if not dry_run:
                self._fail(BadRequest(f"NUL byte in header {name}"))
            return None
        if dry_run:
            return name, value
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._fail(BadRequest(f"more than {self.max_headers} header fields"))
            return None
        if self._error is None:
            self._headers._items.append((name, value))
        return name, value

    def _end_of_headers(self, out: list[Message]) -> bool:
        length = 0
        values = {v.strip() for v in self._headers.get_all("Content-Length")}
        if len(values) > 1:
            self._fail(BadRequest("conflicting Content-Length headers"))
        elif values:
            text = values.pop()
            if not text.isdigit() or len(text) > 15:
                self._fail(BadRequest(f"invalid Content-Length {text[:20]!r}"))
            else:
                length = int(text)
                if length > self.max_body:
                    self._fail(RequestEntityTooLarge(
                        f"body of {length} bytes exceeds the limit of {self.max_body}"))
        if self._error is not None or self._start is None:
            error = self._error or BadRequest("malformed message")
            log.debug("rejecting message: %s", error)
            out.append(MessageError(error, self._cseq, lf_only=self._lf_only))
            # rejected messages count as junk: a peer sending nothing but bad messages
            # is eventually cut off instead of being answered forever
            if not self._add_junk(self._clean_bytes, out):
                return False
            if length:
                # keep the framing: the body that follows is not a message
                self._state = _State.SKIP_BODY
                self._remaining = length
            else:
                self._message_done(good=False)
            return True
        if length:
            self._state = _State.BODY
            self._remaining = length
            return True
        self._emit(out, b"")
        return True

    def _emit(self, out: list[Message], body: bytes) -> None:
        msg = self._start
        assert msg is not None
        msg.headers = self._headers
        msg.body = body
        if isinstance(msg, Request):
            msg.lf_only = self._lf_only
        out.append(msg)
        self._message_done()


def parse_message(data: bytes, role: str = "server") -> Request | Response:
    """Parse exactly one complete message (convenience for tests and tools).

    Raises the message's :class:`RtspError` when it is malformed, and :class:`BadRequest`
    when ``data`` is not exactly one message.
    """
    parser = RtspParser(role=role)
    messages = parser.feed(data)
    if not messages and parser.has_unterminated_lf():
        finished = parser.finish_unterminated()
        if finished is not None:
            messages = [finished]
    if len(messages) != 1 or parser.buffered:
        raise BadRequest(f"expected one complete message, got {len(messages)}")
    msg = messages[0]
    if isinstance(msg, MessageError):
        raise msg.error
    if isinstance(msg, InterleavedFrame):
        raise BadRequest("interleaved frame, not a message")
    return msg
