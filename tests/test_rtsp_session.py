"""RtspSession: the RFC 2326 Appendix A state tables, server (A.2) and client (A.1), without a socket.

Every (state, method) pair is a row: the state it leads to, or 455 with the Allow header the
server answers with. The end-to-end form (the same 455 over TCP) is in test_server.py.
"""

from __future__ import annotations

import pytest

from RtspMessage import Method, RtspError, Status
from RtspSession import (CLIENT_TRANSITIONS, SESSION_ID_DIGITS, SESSIONLESS, SUPPORTED, State,
                         allowed_in, client_allowed, client_next_state, new_session_id, next_state)

I, R, P = State.INIT, State.READY, State.PLAYING
M = Method
ALLOW_INIT = "OPTIONS, DESCRIBE, SETUP, GET_PARAMETER, SET_PARAMETER"
ALLOW_READY = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
ALLOW_PLAYING = "OPTIONS, DESCRIBE, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"

# server (A.2): (state, method, next state or None for 455, Allow of that 455)
SERVER = [
    (I, M.SETUP, R, None),
    (I, M.PLAY, None, ALLOW_INIT),
    (I, M.PAUSE, None, ALLOW_INIT),
    (I, M.TEARDOWN, None, ALLOW_INIT),
    (R, M.SETUP, R, None),
    (R, M.PLAY, P, None),
    (R, M.PAUSE, None, ALLOW_READY),
    (R, M.TEARDOWN, I, None),
    (P, M.SETUP, None, ALLOW_PLAYING),      # no change of transport while playing
    (P, M.PLAY, P, None),
    (P, M.PAUSE, R, None),
    (P, M.TEARDOWN, I, None),
]


@pytest.mark.parametrize("state,method,after,allow", SERVER,
                         ids=[f"{s.value}-{m.value}" for s, m, _, _ in SERVER])
def test_server_table(state, method, after, allow):
    if after is not None:
        assert next_state(state, method) is after
        return
    with pytest.raises(RtspError) as info:
        next_state(state, method)
    assert info.value.status == Status.METHOD_NOT_VALID_IN_THIS_STATE
    assert info.value.headers["Allow"] == allow
    assert ", ".join(m.value for m in allowed_in(state)) == allow


def test_sessionless_methods_are_outside_the_table():
    assert SESSIONLESS == {M.OPTIONS, M.DESCRIBE, M.GET_PARAMETER, M.SET_PARAMETER}
    assert set(SUPPORTED) == SESSIONLESS | {m for (_, m) in [(s, m) for s, m, _, _ in SERVER]}
    assert M.RECORD not in SUPPORTED and M.ANNOUNCE not in SUPPORTED


# client (A.1): (state, method sent, state after a 2xx reply, may it be sent there)
CLIENT = [
    (I, M.OPTIONS, I, True), (I, M.DESCRIBE, I, True), (I, M.SETUP, R, True),
    (I, M.PLAY, P, False), (I, M.GET_PARAMETER, I, False), (I, M.TEARDOWN, I, False),
    (R, M.SETUP, R, True), (R, M.PLAY, P, True), (R, M.TEARDOWN, I, True),
    (R, M.GET_PARAMETER, R, True), (R, M.PAUSE, R, False), (R, M.DESCRIBE, R, True),
    (P, M.PLAY, P, True), (P, M.PAUSE, R, True), (P, M.TEARDOWN, I, True),
    (P, M.GET_PARAMETER, P, True), (P, M.SETUP, R, False), (P, M.OPTIONS, P, True),
]


@pytest.mark.parametrize("state,method,after,allowed", CLIENT,
                         ids=[f"{s.value}-{m.value}" for s, m, _, _ in CLIENT])
def test_client_table(state, method, after, allowed):
    assert client_next_state(state, method) is after
    assert (method in client_allowed(state)) is allowed
    assert ((state, method) in CLIENT_TRANSITIONS or method in (M.OPTIONS, M.DESCRIBE)) is allowed


def test_client_unknown_method_changes_nothing():
    for state in State:
        assert client_next_state(state, "FLY") is state


def test_the_player_follows_the_client_table():
    """RtspClientProtocol moves by the table on 2xx replies and stays put on errors."""
    from RtspClient import RtspClientProtocol
    client = RtspClientProtocol("rtsp://h/movie.Mjpeg")
    steps = [(M.SETUP, 200, R), (M.PLAY, 200, P), (M.PAUSE, 454, P), (M.PAUSE, 200, R),
             (M.TEARDOWN, 200, I)]
    for method, status, state in steps:
        cseq, _ = client.build(method)
        session = "Session: 123456;timeout=60\r\n" if method is M.SETUP else ""
        client.feed(f"RTSP/1.0 {status} X\r\nCSeq: {cseq}\r\n{session}\r\n".encode())
        assert client.state is state, (method, status)


def test_session_ids_are_digits_and_unguessable():
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == SESSION_ID_DIGITS and i.isdigit() and i[0] != "0" for i in ids)
