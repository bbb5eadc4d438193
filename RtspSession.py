"""The server's RTSP session state machine (RFC 2326 appendix A.2) as a table.

Pure: no sockets, no threads.  ServerWorker looks up (state, method) here before it
acts; a pair that is not in the table is answered 455 Method Not Valid in This State,
with an Allow header naming what the state does accept.
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


SESSION_ID_DIGITS = 18


def new_session_id() -> str:
    """An unguessable session id (about 60 bits from `secrets`), digits only.

    Digits only because the course lab's client does int() on it (RFC 2326 3.4
    allows any token); the first digit is never 0 so int() round-trips it.
    """
    low = 10 ** (SESSION_ID_DIGITS - 1)
    return str(low + secrets.randbelow(9 * low))
