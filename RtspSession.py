"""The RTSP session state machines of RFC 2326 Appendix A, as tables: the server's (A.2)
and the client's (A.1), over the same :class:`State`.

Pure: no sockets, no threads.  ServerWorker looks up (state, method) in TRANSITIONS before
it acts; a pair that is not in the table is answered 455 Method Not Valid in This State,
with an Allow header naming what the state does accept.  RtspClientProtocol looks up
CLIENT_TRANSITIONS for what it may send and for the state a 2xx reply moves it to.
"""

from __future__ import annotations

import secrets
from enum import Enum

from RtspMessage import Method, RtspError, Status


class State(Enum):
    """RFC 2326 A.2 server states (RECORD is not served)."""

    INIT = "INIT"
    READY = "READY"
    PLAYING = "PLAYING"


# (state, method) -> next state.  Methods that need no session (OPTIONS, DESCRIBE,
# GET_PARAMETER, SET_PARAMETER) are handled outside the table.
TRANSITIONS: dict[tuple[State, Method], State] = {
    (State.INIT, Method.SETUP): State.READY,
    (State.READY, Method.SETUP): State.READY,  # change of transport before PLAY
    (State.READY, Method.PLAY): State.PLAYING,
    (State.READY, Method.TEARDOWN): State.INIT,
    (State.PLAYING, Method.PLAY): State.PLAYING,  # a new Range while playing: seek
    (State.PLAYING, Method.PAUSE): State.READY,
    (State.PLAYING, Method.TEARDOWN): State.INIT,
}

SESSIONLESS = frozenset({Method.OPTIONS, Method.DESCRIBE, Method.GET_PARAMETER, Method.SET_PARAMETER})
SUPPORTED = (
    Method.OPTIONS, Method.DESCRIBE, Method.SETUP, Method.PLAY, Method.PAUSE,
    Method.TEARDOWN, Method.GET_PARAMETER, Method.SET_PARAMETER,
)


def allowed_in(state: State) -> list:
    """Methods valid in `state`, in the order of SUPPORTED (for an Allow header)."""
    return [m for m in SUPPORTED if m in SESSIONLESS or (state, m) in TRANSITIONS]


def next_state(state: State, method: Method) -> State:
    """The state after `method` in `state`; raises RtspError 455 when not valid there."""
    try:
        return TRANSITIONS[(state, method)]
    except KeyError:
        allow = ", ".join(m.value for m in allowed_in(state))
        raise RtspError(
            Status.METHOD_NOT_VALID_IN_THIS_STATE,
            f"{method.value} is not valid in state {state.value}",
            headers={"Allow": allow},
        ) from None


# The client (A.1): (state, method) -> the state after a 2xx reply.  The methods that need no
# session (OPTIONS, DESCRIBE) may be sent in any state and change nothing; GET_PARAMETER
# (the keepalive) needs a session.  RECORD is not spoken.
CLIENT_TRANSITIONS: dict[tuple[State, Method], State] = {
    (State.INIT, Method.SETUP): State.READY,
    (State.READY, Method.SETUP): State.READY,      # a new transport before PLAY
    (State.READY, Method.PLAY): State.PLAYING,
    (State.READY, Method.TEARDOWN): State.INIT,
    (State.READY, Method.GET_PARAMETER): State.READY,
    (State.PLAYING, Method.PLAY): State.PLAYING,   # a seek (Range) while playing
    (State.PLAYING, Method.PAUSE): State.READY,
    (State.PLAYING, Method.TEARDOWN): State.INIT,
    (State.PLAYING, Method.GET_PARAMETER): State.PLAYING,
}
CLIENT_ANY_STATE = frozenset({Method.OPTIONS, Method.DESCRIBE})


def client_allowed(state: State) -> frozenset[Method]:
    """What the client may send in ``state`` (the player enables its buttons from this)."""
    return CLIENT_ANY_STATE | {m for (s, m) in CLIENT_TRANSITIONS if s is state}


def client_next_state(state: State, method: str) -> State:
    """The client's state after a 2xx reply to ``method`` sent in ``state`` (A.1).

    A reply the table has no row for (a request sent regardless, e.g. a PAUSE raced by the end
    of the stream) moves the client to where that method leads from any state (PLAY ->
    PLAYING, PAUSE -> READY, TEARDOWN -> INIT), or leaves it where it is."""
    try:
        m = Method(method)
    except ValueError:
        return state
    nxt = CLIENT_TRANSITIONS.get((state, m))
    if nxt is not None:
        return nxt
    targets = {t for (_, mm), t in CLIENT_TRANSITIONS.items() if mm is m}
    return targets.pop() if len(targets) == 1 else state


SESSION_ID_DIGITS = 18


def new_session_id() -> str:
    """An unguessable session id (about 60 bits from `secrets`), digits only.

    Digits only because the course lab's client does int() on it (RFC 2326 3.4
    allows any token); the first digit is never 0 so int() round-trips it.
    """
    low = 10 ** (SESSION_ID_DIGITS - 1)
    return str(low + secrets.randbelow(9 * low))
