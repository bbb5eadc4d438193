"""RTSP authentication: HTTP Digest and Basic (RFC 2617) as RTSP 1.0 uses them (RFC 2326 11, 12.5).

Pure module: strings in, strings or verdicts out.  No sockets.

Server side (:class:`Authenticator`):

* :meth:`Authenticator.challenges` gives the ``WWW-Authenticate`` values of a 401
  (Digest first; Basic only when the server allows it).  The nonce is
  ``<hex unix time>.<hex HMAC-SHA256(secret, time)>``: the server can check it and its
  age without remembering it (stateless), and reports ``stale=true`` (RFC 2617 3.2.1)
  when a correctly signed nonce has expired, so clients retry without asking the user.
* :meth:`Authenticator.verify` checks an ``Authorization`` value: Digest with or
  without ``qop=auth`` (RFC 2617 3.2.2, RFC 2069 compatibility), MD5 or MD5-sess, and
  Basic when allowed.  The response digest is compared with :func:`hmac.compare_digest`.
  Stateless nonces cannot detect a replayed ``nc``; a captured request can be replayed
  only until its nonce expires (``nonce_lifetime``).
* :meth:`Authenticator.require` raises a 401 :class:`RtspMessage.RtspError` carrying the
  challenge headers, for a server to turn into its reply.

Users come from ``user:password`` (:meth:`UserDatabase.parse`) or a file of such lines
(:meth:`UserDatabase.load`); ``user:realm:<32 hex>`` lines (Apache htdigest format) keep
only the Digest HA1, which cannot answer Basic.

Client side: :func:`answer_challenge` builds the ``Authorization`` value for the
challenges of a 401, and :func:`split_credentials` takes ``user:pass@`` out of a URL.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

from RtspHeaders import quote_string, split_quoted, unquote_string
from RtspMessage import RtspError, Status

log = logging.getLogger(__name__)

__all__ = [
    "AuthError", "AuthResult", "Authenticator", "Challenge", "NonceState", "UserDatabase",
    "answer_challenge", "digest_response", "format_params", "parse_authorization",
    "parse_challenges", "parse_params", "split_credentials", "DEFAULT_REALM",
]

DEFAULT_REALM = "PyRtspLab"
DEFAULT_NONCE_LIFETIME = 300.0
MAX_HEADER = 4096  # an Authorization value longer than this is refused unparsed

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf"\s*({_TOKEN})\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^,\s\"]*)\s*", re.DOTALL)
# a challenge starts with its scheme: a token followed by white space and no '=' (RFC 2617 1.2)
_CHALLENGE_RE = re.compile(rf"\s*({_TOKEN})(?:\s+(?=[^=\s])|\s*$)")
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")
_HEX32_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_NC_RE = re.compile(r"^[0-9a-fA-F]{8}$")


class AuthError(ValueError):
    """A malformed Authorization / WWW-Authenticate value or users file line."""


class NonceState(enum.Enum):
    """What :meth:`Authenticator.check_nonce` found."""

    VALID = "valid"
    STALE = "stale"      # ours, correctly signed, but expired: answer 401 stale=true
    INVALID = "invalid"  # not ours (forged, corrupted, from another server instance)


@dataclass
class AuthResult:
    """Verdict of :meth:`Authenticator.verify`; ``stale`` asks for a 401 with stale=true."""

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


@dataclass
class Challenge:
    """One challenge of a WWW-Authenticate header: scheme ('Digest', 'Basic') and params."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- parameters

def parse_params(text: str) -> dict[str, str]:
    """'a="x, y", b=z' -> {'a': 'x, y', 'b': 'z'} (RFC 2617 1.2 auth-param list).

    Names are lower-cased; the first occurrence of a name wins.  Raises AuthError when
    the text is not a comma-separated list of name=value pairs.
    """
    params: dict[str, str] = {}
    for item in split_quoted(text, ","):
        if not item.strip():
            continue
        m = _PARAM_RE.fullmatch(item)
        if not m:
            raise AuthError(f"malformed auth parameters at {item.strip()[:40]!r}")
        params.setdefault(m.group(1).lower(), unquote_string(m.group(2)))
    return params


def format_params(params: Iterable[tuple[str, str, bool]]) -> str:
    """(name, value, quoted) triples -> 'name="value", name=value'."""
    return ", ".join(f"{name}={quote_string(value) if quoted else value}" for name, value, quoted in params)


def parse_authorization(value: str) -> tuple[str, dict[str, str] | str]:
    """'Digest username="u", ...' -> ('digest', {...}); 'Basic dTpw' -> ('basic', 'dTpw').

    Other schemes come back with their credentials unparsed (a str)."""
    if value is None or len(value) > MAX_HEADER:
        raise AuthError("missing or over-long Authorization")
    m = _SCHEME_RE.match(value)
    if not m:
        raise AuthError(f"Authorization without a scheme: {value[:40]!r}")
    scheme = m.group(1).lower()
    rest = value[m.end():].strip()
    if scheme != "digest":
        return scheme, rest
    return scheme, parse_params(rest)


def parse_challenges(values: str | Iterable[str]) -> list[Challenge]:
    """Every challenge in one or more WWW-Authenticate values (RFC 2617 1.2).

    One value may hold several challenges ('Digest realm="r", nonce="n", Basic realm="r"').
    A challenge that cannot be parsed is skipped (logged), so one odd scheme does not hide
    a usable one.
    """
    if isinstance(values, str):
        values = [values]
    out: list[Challenge] = []
    for value in values:
        found: list[tuple[str, list[str]]] = []   # (scheme, its comma-separated items)
        for item in split_quoted(value, ","):
            m = _CHALLENGE_RE.match(item)
            if m:
                found.append((m.group(1), [item[m.end():]]))
            elif found:
                found[-1][1].append(item)
        for scheme, items in found:
            rest = ",".join(items).strip()
            try:
                params = parse_params(rest) if scheme.lower() != "basic" or "=" in rest else {}
            except AuthError as exc:
                log.debug("skipping challenge %r: %s", f"{scheme} {rest}"[:60], exc)
                continue
            out.append(Challenge(scheme, params))
    return out


# --------------------------------------------------------------------------- digest math

def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str) -> str:
    """MD5(username:realm:password) (RFC 2617 3.2.2.2)."""
    return _md5(f"{username}:{realm}:{password}")


def digest_response(ha1_hex: str, nonce: str, method: str, uri: str, qop: str | None = None,
                    nc: str = "", cnonce: str = "", algorithm: str = "MD5") -> str:
    """The request-digest (RFC 2617 3.2.2.1) from HA1; MD5-sess folds in nonce and cnonce."""
    if algorithm.upper() == "MD5-SESS":
        ha1_hex = _md5(f"{ha1_hex}:{nonce}:{cnonce}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1_hex}:{nonce}:{ha2}")


# --------------------------------------------------------------------------- users

class UserDatabase:
    """Users and their Digest HA1 (and password, when known, for Basic)."""

    def __init__(self) -> None:
        self._passwords: dict[str, str] = {}
        self._ha1: dict[tuple[str, str], str] = {}  # (user, realm) -> HA1 from htdigest lines

    def add(self, username: str, password: str) -> None:
        if not username or ":" in username or any(c in username + password for c in "\r\n\0"):
            raise AuthError(f"invalid user name {username!r} (no ':' or line breaks)")
        self._passwords[username] = password

    def add_ha1(self, username: str, realm: str, ha1_hex: str) -> None:
        if not username or not _HEX32_RE.match(ha1_hex):
            raise AuthError(f"invalid HA1 line for {username!r}")
        self._ha1[(username, realm)] = ha1_hex.lower()

    @classmethod
    def parse(cls, spec: str) -> "UserDatabase":
        """'user:password' (the password may contain ':') -> a database of one user."""
        users = cls()
        user, sep, password = spec.partition(":")
        if not sep:
            raise AuthError("credentials must be user:password")
        users.add(user, password)
        return users

    @classmethod
    def load(cls, path: os.PathLike | str) -> "UserDatabase":
        """A users file: 'user:password' or 'user:realm:<32 hex HA1>' lines; '#' comments."""
        users = cls()
        text = Path(path).read_text(encoding="utf-8")
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":")
            if len(parts) == 3 and _HEX32_RE.match(parts[2]):
                users.add_ha1(parts[0], parts[1], parts[2])
                continue
            user, sep, password = line.partition(":")
            if not sep:
                raise AuthError(f"{path}:{number}: expected user:password")
            try:
                users.add(user, password)
            except AuthError as exc:
                raise AuthError(f"{path}:{number}: {exc}") from None
        if not users:
            raise AuthError(f"{path}: no users")
        return users

    def __len__(self) -> int:
        return len(set(self._passwords) | {u for u, _ in self._ha1})

    def password(self, username: str) -> str | None:
        return self._passwords.get(username)

    def ha1(self, username: str, realm: str) -> str | None:
        password = self._passwords.get(username)
        if password is not None:
            return ha1(username, realm, password)
        return self._ha1.get((username, realm))


# --------------------------------------------------------------------------- server side

def _same_uri(claimed: str, request_uri: str) -> bool:
    """The Digest uri names the request-URI (RFC 2617 3.2.2.5); clients differ in host form."""
    if claimed == request_uri:
        return True
    try:
        a, b = urlsplit(claimed), urlsplit(request_uri)
    except ValueError:  # e.g. 'rtsp://[' (a malformed IPv6 host)
        return False
    return (a.path or "/").rstrip("/") == (b.path or "/").rstrip("/") and a.query == b.query


class Authenticator:
    """Challenges and verifies RTSP requests for one realm (RFC 2617, RFC 2326 12.5)."""

    def __init__(self, users: UserDatabase, realm: str = DEFAULT_REALM, allow_basic: bool = False,
                 nonce_lifetime: float = DEFAULT_NONCE_LIFETIME, secret: bytes | None = None,
                 qop: bool = True, opaque: bool = True, clock: Callable[[], float] = time.time) -> None:
        if '"' in realm or "\\" in realm:
            raise AuthError("realm must not contain quotes or backslashes")
        self.users = users
        self.realm = realm
        self.allow_basic = allow_basic
        self.nonce_lifetime = nonce_lifetime
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.qop = qop
        self.opaque = hmac.new(self.secret, b"opaque", hashlib.sha256).hexdigest()[:32] if opaque else None
        self.clock = clock
        self._dummy_ha1 = ha1("", realm, secrets.token_hex(8))

    # -- nonces
    def _sign(self, stamp: str) -> str:
        return hmac.new(self.secret, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def make_nonce(self, now: float | None = None) -> str:
        """'<hex ms time>.<HMAC>': checkable without server state (RFC 2617 3.2.1 'nonce')."""
        stamp = format(int((self.clock() if now is None else now) * 1000), "x")
        return f"{stamp}.{self._sign(stamp)}"

    def check_nonce(self, nonce: str, now: float | None = None) -> NonceState:
        stamp, sep, mac = nonce.partition(".")
        if not sep or not stamp or len(stamp) > 16 or not re.fullmatch(r"[0-9a-f]+", stamp):
            return NonceState.INVALID
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._sign(stamp).encode("ascii")):
            return NonceState.INVALID
        age = (self.clock() if now is None else now) - int(stamp, 16) / 1000.0
        if age < -5.0:  # from the future: not a nonce we issued with this clock
            return NonceState.INVALID
        return NonceState.VALID if age <= self.nonce_lifetime else NonceState.STALE

    # -- challenges
    def challenges(self, stale: bool = False, now: float | None = None) -> list[str]:
        """WWW-Authenticate values for a 401: Digest, then Basic if allowed (RFC 2617 3.2.1, 2)."""
        params = [("realm", self.realm, True), ("nonce", self.make_nonce(now), True)]
        if self.opaque:
            params.append(("opaque", self.opaque, True))
        if stale:
            params.append(("stale", "true", False))
        params.append(("algorithm", "MD5", False))
        if self.qop:
            params.append(("qop", "auth", True))
        values = ["Digest " + format_params(params)]
        if self.allow_basic:
            values.append("Basic " + format_params([("realm", self.realm, True)]))
        return values

    # -- verification
    def verify(self, authorization: str | None, method: str, uri: str, now: float | None = None) -> AuthResult:
        """Check one request's Authorization value for `method` and request-URI `uri`."""
        if not authorization:
            return AuthResult(False, reason="no credentials")
        try:
            scheme, credentials = parse_authorization(authorization)
        except AuthError as exc:
            return AuthResult(False, reason=str(exc))
        if scheme == "basic" and isinstance(credentials, str):
            return self._verify_basic(credentials)
        if scheme == "digest" and isinstance(credentials, dict):
            return self._verify_digest(credentials, method, uri, now)
        return AuthResult(False, reason=f"scheme {scheme!r} not accepted")

    def _verify_basic(self, token: str) -> AuthResult:
        if not self.allow_basic:
            return AuthResult(False, reason="Basic authentication is not enabled")
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return AuthResult(False, reason="Basic credentials are not base64 of UTF-8")
        user, sep, password = decoded.partition(":")
        if not sep:
            return AuthResult(False, reason="Basic credentials without ':'")
        expected = self.users.password(user)
        # compare against something even for unknown users: no timing hint about names
        good = hmac.compare_digest(password.encode("utf-8"),
                                   (expected if expected is not None else secrets.token_hex(16)).encode("utf-8"))
        if good and expected is not None:
            return AuthResult(True, username=user)
        return AuthResult(False, reason=f"wrong user or password for {user!r}")

    def _verify_digest(self, p: dict[str, str], method: str, uri: str, now: float | None) -> AuthResult:
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
        if missing:
            return AuthResult(False, reason=f"Digest credentials lack {', '.join(missing)}")
        user, nonce = p["username"], p["nonce"]
        if p["realm"] != self.realm:
            return AuthResult(False, reason=f"realm {p['realm'][:40]!r} is not {self.realm!r}")
        algorithm = p.get("algorithm", "MD5")
        if algorithm.upper() not in ("MD5", "MD5-SESS"):
            return AuthResult(False, reason=f"algorithm {algorithm[:20]!r} not supported")
        qop = p.get("qop")
        if qop is not None:
            if qop != "auth":
                return AuthResult(False, reason=f"qop {qop[:20]!r} not supported")
            if not _NC_RE.match(p.get("nc", "")) or not p.get("cnonce"):
                return AuthResult(False, reason="qop=auth without a valid nc and cnonce")
        elif algorithm.upper() == "MD5-SESS":
            return AuthResult(False, reason="MD5-sess needs qop and cnonce")
        if not _same_uri(p["uri"], uri):
            return AuthResult(False, reason=f"Digest uri {p['uri'][:60]!r} is not the request-URI")
        if self.opaque and p.get("opaque", self.opaque) != self.opaque:
            return AuthResult(False, reason="opaque does not match")
        state = self.check_nonce(nonce, now)
        if state is NonceState.INVALID:
            return AuthResult(False, reason="nonce not issued by this server")
        known = self.users.ha1(user, self.realm)
        expected = digest_response(known or self._dummy_ha1, nonce, method, p["uri"], qop,
                                   p.get("nc", ""), p.get("cnonce", ""), algorithm)
        good = hmac.compare_digest(expected.encode("ascii"), p["response"].lower().encode("ascii", "replace"))
        if not good or known is None:
            return AuthResult(False, reason=f"wrong user or password for {user[:40]!r}")
        if state is NonceState.STALE:
            # right password, old nonce: the client retries with the new one unprompted
            return AuthResult(False, username=user, stale=True, reason="nonce expired")
        return AuthResult(True, username=user)

    def require(self, headers, method: str, uri: str, now: float | None = None) -> str:
        """The authenticated user name, or raise 401 with the challenge(s) (RFC 2326 12.5).

        `headers` is anything with ``get(name)`` (RtspMessage.Headers).  The raised error's
        The raised error's ``headers`` hold one WWW-Authenticate field per challenge (Digest,
        then Basic when it is accepted), each its own field as RFC 2617 1.2 allows.
        """
        result = self.verify(headers.get("Authorization"), method, uri, now)
        if result.ok:
            return result.username or ""
        values = self.challenges(stale=result.stale, now=now)
        raise RtspError(Status.UNAUTHORIZED, f"authentication required: {result.reason}",
                        [("WWW-Authenticate", value) for value in values])


# --------------------------------------------------------------------------- client side

def answer_challenge(challenges: str | Iterable[str], username: str, password: str, method: str,
                     uri: str, nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization value answering a 401's WWW-Authenticate value(s).

    Prefers Digest (RFC 2617 3.2.2; qop=auth when offered, as ffmpeg and VLC do) and falls
    back to Basic.  `uri` is the request-URI of the request being retried.  Raises
    AuthError when no offered scheme is usable.
    """
    parsed = parse_challenges(challenges)
    for challenge in parsed:
        if challenge.scheme.lower() != "digest":
            continue
        p = challenge.params
        if "nonce" not in p or "realm" not in p:
            continue
        algorithm = p.get("algorithm", "MD5")
        if algorithm.upper() not in ("MD5", "MD5-SESS"):
            continue
        offered = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        qop = "auth" if "auth" in offered else None
        if offered and qop is None:
            continue  # only auth-int offered: would need the body hash
        nc_text = format(nc, "08x")
        cnonce = cnonce or secrets.token_hex(8)
        response = digest_response(ha1(username, p["realm"], password), p["nonce"], method, uri, qop,
                                   nc_text, cnonce, algorithm)
        fields = [("username", username, True), ("realm", p["realm"], True), ("nonce", p["nonce"], True),
                  ("uri", uri, True), ("response", response, True)]
        if "algorithm" in p:
            fields.append(("algorithm", algorithm, False))
        if "opaque" in p:
            fields.append(("opaque", p["opaque"], True))
        if qop:
            fields += [("qop", qop, False), ("nc", nc_text, False), ("cnonce", cnonce, True)]
        return "Digest " + format_params(fields)
    if any(c.scheme.lower() == "basic" for c in parsed):
        token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        return f"Basic {token}"
    raise AuthError("no usable challenge (Digest MD5 or Basic) offered")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """'rtsp://u:p%40ss@host:554/x' -> ('rtsp://host:554/x', 'u', 'p@ss') (RFC 3986 3.2.1)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user), unquote(password) if sep else None
