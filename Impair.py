"""Seeded, deterministic network impairment for teaching and for tests.

``Impairer(ImpairSpec.parse("loss=5%,burst=3,reorder=2%,dup=1%,delay=20ms,jitter=10ms,seed=1"))``
sits between a socket and a receive path: ``push(packet, now)`` what arrived, ``pop_due(now)``
what the impaired network delivers by ``now``. Pure: time is passed in, randomness comes from
``random.Random(seed)``, so the same spec and the same push times give the same output, and
the ground-truth counters (dropped, duplicated, reordered) let tests check a receiver's
RFC 3550 A.3 statistics exactly.

Model (in the spirit of Linux netem):
- loss: independent (Bernoulli) losses, or with ``burst=B`` a two-state Gilbert model whose
  loss bursts last B packets on average and whose long-run loss rate is ``loss``;
- dup: the packet is delivered twice, the copy right after the original;
- reorder: the packet is held back and delivered right after the next packet that is not
  lost (it "arrives late"); if no packet follows within ``hold`` it goes out on its own;
- delay + jitter: each packet is delayed by ``delay`` plus a uniform offset in
  [-jitter, +jitter] (never below 0). Packets keep their order under jitter (as a FIFO
  link would): only ``reorder`` reorders.
Each pushed packet consumes exactly four random numbers, so changing one parameter does not
change the decisions drawn for the others.
"""

from __future__ import annotations

import heapq
import logging
import random
import re
from dataclasses import dataclass, field, fields

log = logging.getLogger(__name__)

DEFAULT_HOLD = 0.1  # s a reordered packet waits for a later packet to overtake it


class ImpairError(ValueError):
    """An impairment specification that cannot be parsed or makes no sense."""


_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"


def _parse_probability(key: str, text: str) -> float:
    m = re.fullmatch(rf"({_NUMBER})(%?)", text.strip())
    if not m:
        raise ImpairError(f"{key}={text!r}: expected a percentage like 5% or a fraction "
                          f"like 0.05")
    value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not 0.0 <= value <= 1.0:
        raise ImpairError(f"{key}={text!r}: must be between 0% and 100%"
                          + ("" if m.group(2) else " (write 5% for five percent)"))
    return value


def _parse_time(key: str, text: str) -> float:
    m = re.fullmatch(rf"({_NUMBER})\s*(s|ms|us)?", text.strip())
    if not m:
        raise ImpairError(f"{key}={text!r}: expected a time like 20ms or 0.5s")
    if m.group(2) is None:
        if float(m.group(1)) == 0:
            return 0.0
        raise ImpairError(f"{key}={text!r}: needs a unit (s, ms or us), e.g. {text}ms")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def _format_number(value: float) -> str:
    return format(value, ".12g")


@dataclass(frozen=True)
class ImpairSpec:
    """What to do to the packets. Probabilities are fractions in [0, 1], times in seconds.

    ``burst`` is the mean length of a loss burst in packets (None = independent losses).
    """
    loss: float = 0.0
    burst: float | None = None
    reorder: float = 0.0
    dup: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    seed: int = 0
    hold: float = DEFAULT_HOLD

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "dup"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ImpairError(f"{name} must be between 0 and 1, got {value}")
        for name in ("delay", "jitter", "hold"):
            if getattr(self, name) < 0:
                raise ImpairError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.burst is not None:
            if self.burst < 1:
                raise ImpairError(f"burst is a mean burst length in packets and must be >= 1, "
                                  f"got {_format_number(self.burst)}")
            if 0 < self.loss < 1 and self.loss / (1 - self.loss) > self.burst:
                need = self.loss / (1 - self.loss)
                raise ImpairError(f"burst={_format_number(self.burst)} is too short for "
                                  f"loss={_format_number(self.loss * 100)}%: bursts must "
                                  f"average at least {need:.3g} packets")

    @classmethod
    def parse(cls, text: str) -> "ImpairSpec":
        """Parse ``"loss=5%,burst=3,reorder=2%,dup=1%,delay=20ms,jitter=10ms,seed=N"``.

        Keys may come in any order, each at most once; "" / "none" / "off" mean no impairment.
        Raises :class:`ImpairError` (a ValueError) naming the offending item.
        """
        text = text.strip()
        if text.lower() in ("", "none", "off"):
            return cls()
        values: dict[str, object] = {}
        known = [f.name for f in fields(cls)]
        for item in text.split(","):
            item = item.strip()
            if not item:
                raise ImpairError(f"empty item in impairment spec {text!r}")
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep or not value.strip():
                raise ImpairError(f"{item!r}: expected key=value")
            if key not in known:
                raise ImpairError(f"unknown impairment {key!r}; known: {', '.join(known)}")
            if key in values:
                raise ImpairError(f"{key} given twice in {text!r}")
            if key in ("loss", "reorder", "dup"):
                values[key] = _parse_probability(key, value)
            elif key in ("delay", "jitter", "hold"):
                values[key] = _parse_time(key, value)
            elif key == "burst":
                try:
                    values[key] = float(value)
                except ValueError:
                    raise ImpairError(f"burst={value!r}: expected a mean burst length in "
                                      f"packets like 3") from None
            else:  # seed
                try:
                    values[key] = int(value, 0)
                except ValueError:
                    raise ImpairError(f"seed={value!r}: expected an integer") from None
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        """Canonical text form; ``ImpairSpec.parse(str(spec)) == spec``."""
        parts = []
        if self.loss:
            parts.append(f"loss={_format_number(self.loss * 100)}%")
        if self.burst is not None:
            parts.append(f"burst={_format_number(self.burst)}")
        if self.reorder:
            parts.append(f"reorder={_format_number(self.reorder * 100)}%")
        if self.dup:
            parts.append(f"dup={_format_number(self.dup * 100)}%")
        if self.delay:
            parts.append(f"delay={_format_number(self.delay * 1000)}ms")
        if self.jitter:
            parts.append(f"jitter={_format_number(self.jitter * 1000)}ms")
        if self.hold != DEFAULT_HOLD:
            parts.append(f"hold={_format_number(self.hold * 1000)}ms")
        parts.append(f"seed={self.seed}")
        return ",".join(parts)

    @property
    def active(self) -> bool:
        """True when the spec changes anything at all."""
        return bool(self.loss or self.reorder or self.dup or self.delay or self.jitter)


@dataclass
class Delivery:
    """Ground truth for one delivered packet (kept when ``Impairer(record=True)``)."""
    index: int            # push order, 0-based
    sent_at: float        # the ``now`` given to push()
    due: float            # when the impaired network delivers it
    duplicate: bool       # the extra copy of a duplicated packet
    reordered: bool       # delivered after a packet pushed later than it


@dataclass
class _Held:
    index: int
    data: bytes
    sent_at: float
    deadline: float
    copies: int


@dataclass(order=True)
class _Scheduled:
    due: float
    order: int
    index: int = field(compare=False)
    sent_at: float = field(compare=False)
    duplicate: bool = field(compare=False)
    data: bytes = field(compare=False, repr=False)


class Impairer:
    """Apply an :class:`ImpairSpec` to a packet stream; see the module docstring.

    Counters: ``sent`` (pushed), ``dropped``, ``duplicated`` (extra copies delivered),
    ``reordered`` (delivered after a later-pushed packet), ``delivered`` (all copies out).
    """

    def __init__(self, spec: ImpairSpec | str = ImpairSpec(), record: bool = False) -> None:
        self.spec = ImpairSpec.parse(spec) if isinstance(spec, str) else spec
        self._rng = random.Random(self.spec.seed)
        self._bad = False  # Gilbert state: in a loss burst
        self._heap: list[_Scheduled] = []
        self._held: list[_Held] = []
        self._order = 0
        self._last_due = float("-inf")
        self._max_index_out = -1
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0
        self.reordered = 0
        self.delivered = 0
        self.record = record
        self.deliveries: list[Delivery] = []

    def reconfigure(self, spec: ImpairSpec | str) -> None:
        """Change the impairment while packets flow (GUI panel); counters and queued packets
        stay. The random stream restarts only when the seed changes."""
        spec = ImpairSpec.parse(spec) if isinstance(spec, str) else spec
        if spec.seed != self.spec.seed:
            self._rng = random.Random(spec.seed)
        if spec.burst is None:
            self._bad = False
        self.spec = spec
        log.info("impairment now %s", spec)

    # -- input -------------------------------------------------------------------------------

    def _lost(self, u: float) -> bool:
        loss = self.spec.loss
        if loss <= 0.0:
            self._bad = False
            return False
        if loss >= 1.0:
            return True
        if self.spec.burst is None:
            return u < loss
        # Gilbert: leave a burst with r = 1/burst, enter one with p so that p/(p+r) = loss
        r = 1.0 / self.spec.burst
        p = loss * r / (1.0 - loss)
        self._bad = (u >= r) if self._bad else (u < p)
        return self._bad

    def _schedule(self, due: float, index: int, sent_at: float, copies: int,
                  data: bytes) -> None:
        for copy in range(copies):
            heapq.heappush(self._heap, _Scheduled(due, self._order, index, sent_at, copy > 0,
                                                  data))
            self._order += 1

    def _release_expired(self, now: float) -> None:
        keep = []
        for held in self._held:
            if held.deadline <= now:
                due = max(held.deadline, self._last_due)
                self._last_due = due
                self._schedule(due, held.index, held.sent_at, held.copies, held.data)
            else:
                keep.append(held)
        self._held = keep

    def push(self, packet: bytes, now: float) -> None:
        """A packet arrives from the real network at time ``now`` (seconds, monotonic)."""
        spec = self.spec
        index = self.sent
        self.sent += 1
        u_loss, u_dup, u_reorder, u_jitter = (self._rng.random() for _ in range(4))
        self._release_expired(now)
        if self._lost(u_loss):
            self.dropped += 1
            return
        copies = 2 if u_dup < spec.dup else 1
        offset = (2.0 * u_jitter - 1.0) * spec.jitter if spec.jitter else 0.0
        due = now + max(0.0, spec.delay + offset)
        if u_reorder < spec.reorder:
            self._held.append(_Held(index, bytes(packet), now, due + spec.hold, copies))
            return
        due = max(due, self._last_due)  # a FIFO link: jitter alone never reorders
        self._last_due = due
        self._schedule(due, index, now, copies, bytes(packet))
        # the packets held back for reordering come right after this later one
        for held in self._held:
            self._schedule(due, held.index, held.sent_at, held.copies, held.data)
        self._held = []

    # -- output ------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When pop_due() will next have something (or a held packet times out), or None."""
        times = [h.deadline for h in self._held]
        if self._heap:
            times.append(self._heap[0].due)
        return min(times) if times else None

    def pop_due(self, now: float) -> list[bytes]:
        """Packets delivered by time ``now``, in delivery order."""
        return [data for _, data in self.pop_due_timed(now)]

    def pop_due_timed(self, now: float) -> list[tuple[float, bytes]]:
        """Packets delivered by time ``now``, in delivery order, each with the time the impaired
        network delivered it (its arrival at the receiver, at most ``now``)."""
        self._release_expired(now)
        out = []
        while self._heap and self._heap[0].due <= now:
            item = heapq.heappop(self._heap)
            reordered = False
            if item.duplicate:
                self.duplicated += 1
            elif item.index < self._max_index_out:
                reordered = True
                self.reordered += 1
            self._max_index_out = max(self._max_index_out, item.index)
            self.delivered += 1
            if self.record:
                self.deliveries.append(Delivery(item.index, item.sent_at, item.due,
                                                item.duplicate, reordered))
            out.append((min(item.due, now), item.data))
        return out

    def flush(self) -> list[bytes]:
        """Everything still queued or held, in delivery order (end of stream)."""
        return self.pop_due(float("inf"))

    @property
    def pending(self) -> int:
        """Packets (copies included) not delivered yet."""
        return len(self._heap) + sum(h.copies for h in self._held)

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "dropped": self.dropped, "duplicated": self.duplicated,
                "reordered": self.reordered, "delivered": self.delivered,
                "pending": self.pending}


__all__ = ["ImpairSpec", "ImpairError", "Impairer", "Delivery", "DEFAULT_HOLD"]
