"""PV types to p4p channels: building each SharedPV, its first Value, and the forms it posts.

The only module that knows how a registered PV type maps onto p4p's normative types.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from p4p import Type, Value
from p4p.nt import NTEnum, NTScalar
from p4p.server.thread import SharedPV

from ..config import IOCConfig
from ..model import (
    EPICS_EPOCH,
    OBSERVABLE_TYPE,
    OK,
    PV_TYPES,
    AlarmLimits,
    AlarmState,
    ObservableConfig,
    PVType,
    SetpointConfig,
    Simulation,
)

__all__ = ["FORMS", "IDENTITY", "IDENTITY_FIELD", "Channel", "PostBatch", "PutCallback", "build_channels",
           "initial_value", "nt_for", "plain"]

_post_value: Callable[[SharedPV, Value], None] = SharedPV.post
"""How a PostBatch posts a ready Value: every channel's wrap passes a Value through (_Wrap)."""


class _Wrap:
    """A channel's SharedPV `wrap=`: a ready Value goes out as it is (the cheapest post), any
    other value through the PV's normative type, as `nt=` alone would do."""

    __slots__ = ("_nt",)

    def __init__(self, nt: Any) -> None:
        self._nt = nt

    def __call__(self, value: Any, **kws: Any) -> Value:
        if isinstance(value, Value) and not kws:
            return value
        return self._nt.wrap(value, **kws)


def _as_sent(value: Value) -> Value:
    """A channel's SharedPV `unwrap=`: a put's Value as the client sent it (the put path, _puts.py, reads it)."""
    return value


IDENTITY_FIELD = "softiocId"
"""The one top-level field a soft IOC adds to every PV: the id of the machine serving it."""
IDENTITY = [(IDENTITY_FIELD, "s")]

PutCallback = Callable[[str, Any], None]
"""Called with (PV name, p4p server operation) for each put a channel receives."""


def plain(value: Any) -> Any:
    """Turn a put's value (a p4p Value, or p4p-unwrapped: ntfloat, ntenum...) into plain Python."""
    if type(value).__name__ == "ntenum":
        return int(value)
    raw = value if isinstance(value, Value) else getattr(value, "raw", None)
    if raw is not None:  # str() of an nt wrapper prints its timestamp: read the field itself
        if "NTEnum" in raw.getID():
            return int(raw["value.index"])
        value = raw["value"]
    if isinstance(value, np.ndarray):
        return np.asarray(value, dtype=float)
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


FORMS = ["Default", "String", "Binary", "Decimal", "Hex", "Exponential", "Engineering"]
"""display.form choices, as QSRV publishes them."""

_ALARM = ("S", "alarm_t", [("severity", "i"), ("status", "i"), ("message", "s")])
_TIME = ("S", "time_t", [("secondsPastEpoch", "l"), ("nanoseconds", "i"), ("userTag", "i")])


def _numeric_fields(code: str) -> list[tuple[str, Any]]:
    """display, control and valueAlarm as QSRV serves them for an ao/ai/longout/waveform."""
    limit = code[-1]
    return [
        ("display", ("S", "structure", [
            ("limitLow", limit), ("limitHigh", limit), ("description", "s"), ("units", "s"),
            ("precision", "i"), ("form", ("S", "enum_t", [("index", "i"), ("choices", "as")])),
        ])),
        ("control", ("S", "structure", [("limitLow", limit), ("limitHigh", limit), ("minStep", limit)])),
        ("valueAlarm", ("S", "structure", [
            ("active", "?"), ("lowAlarmLimit", limit), ("lowWarningLimit", limit),
            ("highWarningLimit", limit), ("highAlarmLimit", limit), ("lowAlarmSeverity", "i"),
            ("lowWarningSeverity", "i"), ("highWarningSeverity", "i"), ("highAlarmSeverity", "i"),
            ("hysteresis", "d"),
        ])),
    ]


class _QSRVScalar(NTScalar):
    """NTScalar(Array) with exactly the fields, in the order, that QSRV serves for a record."""

    def __init__(self, code: str) -> None:
        if code[-1] == "s":  # stringout/stringin
            extra = [("display", ("S", "structure", [("description", "s"), ("units", "s")]))]
        else:
            extra = _numeric_fields(code)
        self.type = Type(id="epics:nt/NTScalarArray:1.0" if code.startswith("a") else "epics:nt/NTScalar:1.0",
                         spec=[("value", code), ("alarm", _ALARM), ("timeStamp", _TIME), *extra, *IDENTITY])


class _QSRVEnum(NTEnum):
    """NTEnum with the fields QSRV serves for an mbbo/mbbi: display holds only a description."""

    def __init__(self) -> None:
        super().__init__()
        self.type = Type(id="epics:nt/NTEnum:1.0", spec=[
            ("value", ("S", "enum_t", [("index", "i"), ("choices", "as")])),
            ("alarm", _ALARM), ("timeStamp", _TIME),
            ("display", ("S", "structure", [("description", "s")])),
            *IDENTITY,
        ])


_NTS: dict[str | None, NTScalar | NTEnum] = {}


def nt_for(kind: PVType) -> NTScalar | NTEnum:
    """The normative type serving `kind`, with the fields a real record of that type has
    (setpoints and readbacks alike: an ai has control limits too, 0/0).

    One instance per NT code, shared by every PV of that code: pvxs takes a posted Value only
    of the very type the PV was opened with, so sharing lets one Value post to all (PostBatch).
    """
    nt = _NTS.get(kind.nt_code)
    if nt is None:
        nt = _NTS.setdefault(kind.nt_code, _QSRVEnum() if kind.nt_code is None else _QSRVScalar(kind.nt_code))
    return nt


def initial_value(cfg: SetpointConfig | ObservableConfig, kind: PVType, value: Any, control: bool,
                  alarm_limits: AlarmLimits | None = None, identity: str = "") -> dict[str, Any]:
    """The full first Value of a PV: value plus the metadata a real record publishes, and `identity`.

    A setpoint (`control`) publishes its limits as an ao does (display LOPR/HOPR, control
    DRVL/DRVH); a readback or observable as a calc/ai does (limits 0/0) with `alarm_limits`
    in valueAlarm (limits only: QSRV publishes no severity and no hysteresis there). Limits
    not set read NaN (a double) or 0 (an int, an array), as on QSRV.
    """
    now = EPICS_EPOCH if control and getattr(cfg, "udf", False) else time.time()
    data: dict[str, Any] = {
        IDENTITY_FIELD: identity,
        "timeStamp.secondsPastEpoch": int(now), "timeStamp.nanoseconds": int(now % 1 * 1e9),
        **kind.initial_fields(value, getattr(cfg, "choices", ())),
        "display.description": getattr(cfg, "description", ""),
    }
    if kind.nt_code == "s":
        data["display.units"] = cfg.units
    if not kind.numeric:
        return data
    data["display.units"] = cfg.units
    data["display.precision"] = cfg.precision or 0
    data["display.form.choices"] = FORMS
    limits = getattr(cfg, "limits", None)
    if limits is not None and control:
        data["display.limitLow"], data["display.limitHigh"] = limits
        data["control.limitLow"], data["control.limitHigh"] = limits
    unset = math.nan if kind.scalar and kind.nt_code == "d" else 0
    for key, field_name in (("lolo", "lowAlarmLimit"), ("low", "lowWarningLimit"),
                            ("high", "highWarningLimit"), ("hihi", "highAlarmLimit")):
        given = getattr(alarm_limits, key) if alarm_limits is not None else None
        data[f"valueAlarm.{field_name}"] = unset if given is None else given
    # valueAlarm.hysteresis stays 0 and every *Severity 0, whatever HYST and HHSV say, as QSRV serves them
    return data


@dataclass(slots=True)  # slots: the update loop reads and sets a few fields of thousands of these a step
class Channel:
    """One served PV and how the update loop treats it."""

    name: str
    pv: SharedPV
    kind: PVType
    initial: dict[str, Any]
    device: str | None = None  # the setpoint this PV belongs to, if any
    open: bool = True
    last: Any = None
    last_post: float = 0.0
    alarm: AlarmState = OK  # the alarm fields last published
    update_rate: float | None = None  # its own posting rate, Hz (None: every update step)
    next_post: float = 0.0  # monotonic s its next post at update_rate is due
    nt: Any = None  # the normative type its PV was opened with (nt_for), which PostBatch posts

    def due(self, now: float, fault_rate: float | None, step: float) -> bool:
        """Whether the update loop at monotonic `now` (s), stepping every `step` s, may post.

        A slow_readback fault's `fault_rate` (Hz; 0 stops) overrides a faster own rate. The own
        `update_rate` keeps a fixed schedule, posting at the step nearest each due time, so its
        mean rate is exact whatever the loop's jitter.
        """
        rate = self.update_rate
        if fault_rate is not None and (rate is None or fault_rate < rate):
            return fault_rate > 0 and now - self.last_post >= 1.0 / fault_rate
        if rate is None:
            return True
        if now < self.next_post - step / 2:
            return False
        late = now - self.next_post > 1.0 / rate  # first post, or the loop stalled: start afresh
        self.next_post = (now if late else self.next_post) + 1.0 / rate
        return True

    def post(self, value: Any, stamp: float, alarm: AlarmState | None = None) -> None:
        """Publish `value` (wall-clock `stamp`, s), with `alarm` when it changed; remember both."""
        self.last = value
        if alarm is None or alarm == self.alarm:
            self.pv.post(self.kind.post_form(value), timestamp=stamp)
            return
        self.alarm = alarm
        self.pv.post({**self.kind.value_fields(value), **_alarm_fields(alarm)}, timestamp=stamp)

    def post_alarm(self, alarm: AlarmState, stamp: float) -> None:
        """Publish a new alarm for the value the PV holds (a fault armed or cleared)."""
        if alarm != self.alarm:
            if self.open:
                self.post(self.last, stamp, alarm)
            else:
                self.alarm = alarm

    def holds(self, value: Any) -> bool:
        """True when `value` is what the PV last posted (nothing to post)."""
        last = self.last
        if type(value) is float and type(last) is float:  # the common case, first
            return value == last
        if isinstance(value, np.ndarray) or isinstance(last, np.ndarray):
            return isinstance(value, np.ndarray) and isinstance(last, np.ndarray) and np.array_equal(value, last)
        return bool(value == last)

    def close(self) -> None:
        """Take the PV off the network; clients reconnect when it reopens."""
        if self.open:
            self.open = False
            self.pv.close()  # not destroy

    def reopen(self) -> None:
        """Serve the PV again with its last value."""
        if not self.open:
            self.pv.open({**self.initial, **self.kind.value_fields(self.last), **_alarm_fields(self.alarm)})
            self.open = True


class PostBatch:
    """The posts of one update step at monotonic `now`, stamped `stamp` (wall-clock s), alarms unchanged.

    The step appends (channel, value) to `pending`; `send` posts them. SharedPV.post stores the
    marked fields of the Value it is given and sends each subscriber a copy, so one Value per PV
    type, stamped once, posts every PV of that type: only `value` changes between posts. That is
    the cheapest form p4p takes (building a Value through the NT wrap costs more than the post
    itself). Not thread-safe: one batch, one thread.
    """

    def __init__(self, stamp: float, now: float) -> None:
        self.stamp, self.now = stamp, now
        self.pending: list[tuple[Channel, Any]] = []
        self.posts = 0  # made so far, by send() and by the step itself (count())

    def count(self) -> None:
        """One post the step made itself (a changed alarm)."""
        self.posts += 1

    def send(self) -> None:
        """Post every pending value, remember it as each channel's last, and empty `pending`."""
        seconds, fraction = divmod(self.stamp, 1.0)  # as p4p's own timestamp= does
        stamp = {"secondsPastEpoch": int(seconds), "nanoseconds": int(fraction * 1e9)}
        now, post = self.now, _post_value
        posted = len(self.pending)
        values: dict[int, Value] = {}  # one per PV type, by id of its NT
        nt: Any = False  # the type `held` is of (False: none yet)
        held: Any = None
        field, enum = "value", False
        for channel, value in self.pending:
            if channel.nt is not nt:  # another PV type than the previous PV's
                nt = channel.nt
                if nt is not None:
                    held = values.get(id(nt))
                    if held is None:
                        held = values[id(nt)] = Value(nt.type, {"timeStamp": stamp})
                    enum = channel.kind.enum
                    field = "value.index" if enum else "value"
            channel.last_post = now
            if nt is None:  # a channel not built by build_channels: its own (slower) post
                channel.post(value, self.stamp)
                continue
            channel.last = value
            held[field] = int(value) if enum else value
            try:
                post(channel.pv, held)
            except Exception:
                if channel.open:
                    raise
                posted -= 1  # closed since the step looked (an outage): it reopens with `last`
        self.posts += posted
        self.pending = []


def _alarm_fields(alarm: AlarmState) -> dict[str, Any]:
    severity, status, message = alarm
    return {"alarm.severity": severity, "alarm.status": status, "alarm.message": message}


class _Handler:
    """A SharedPV handler passing every put to one callback with the PV's name."""

    def __init__(self, name: str, on_put: PutCallback) -> None:
        self._name, self._on_put = name, on_put

    def put(self, pv: SharedPV, op: Any) -> None:
        self._on_put(self._name, op)


def build_channels(
    config: IOCConfig, sim: Simulation, queue: Any, on_put: PutCallback, on_read_only_put: PutCallback,
    identity: str = "",
) -> dict[str, Channel]:
    """One Channel per simulated PV, in config order; setpoint puts go to `on_put`; each carries `identity`."""
    channels: dict[str, Channel] = {}

    def add(name: str, cfg: Any, kind: PVType, value: Any, control: bool, device: str | None) -> None:
        init = initial_value(cfg, kind, value, control, None if control else cfg.alarm_limits, identity)
        alarm = sim.alarms.get(name, OK)  # UDF, or a readback's initial value past an alarm limit
        handler = _Handler(name, on_put if control else on_read_only_put)
        nt = nt_for(kind)
        pv = SharedPV(nt=nt, initial={**init, **_alarm_fields(alarm)}, handler=handler, queue=queue,
                      wrap=_Wrap(nt), unwrap=_as_sent)
        channels[name] = Channel(name, pv, kind, init, device=device, last=value, alarm=alarm,
                                 update_rate=None if control else cfg.update_rate, nt=nt)

    for sp in config.setpoints:
        kind = PV_TYPES[sp.type]
        add(sp.name, sp, kind, sim.devices[sp.name].setpoint, True, sp.name)
        if sp.readback:
            add(sp.readback, sp, kind, sim.readbacks[sp.readback], False, sp.name)
    for ob in config.observables:
        add(ob.name, ob, OBSERVABLE_TYPE, sim.observed[ob.name], False, None)
    return channels
