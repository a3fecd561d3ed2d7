"""The Interface's settings: one frozen object, each field declared once with all it needs.

A field carries its default, its check, its environment variable (if operators may set it
without code) and a one-line doc, in its metadata. Interface, its pickling and repr, the
``EPICS_PVA_INTERFACE_*`` parsing and the Badger model all loop over these fields: adding a
setting is one field here, plus its use.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["SWITCHES", "SettingSpec", "Settings", "defaults", "environment_settings", "parse_setting", "specs"]

# upper bounds of every numeric setting: float settings are seconds (beyond an hour p4p's waits
# overflow or the number is a typo: 1e10 s raised OverflowError from p4p), int ones are counts
MAX_SECONDS = 3600.0
MAX_COUNT = 1_000_000

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SettingSpec:
    """How one setting is checked and documented; `variable` is its environment variable or None."""

    doc: str
    check: Callable[[Any], Any]  # the normalised value, or ValueError saying what it must be
    variable: str | None = None
    kind: type = object  # bool, int, float: how its environment text is read
    bounds: Mapping[str, float] = field(default_factory=dict)  # {"gt": 0} / {"ge": 1}: for schemas


def _flag(value: Any) -> bool:
    if isinstance(value, bool) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    if type(value).__name__ == "bool_":  # numpy's bool
        return bool(value)
    raise ValueError("must be true or false")


def _fail_safe(value: Any) -> bool:
    # read-only errs towards not writing: anything truthy (even the text "false") means read-only
    return bool(value)


def _bounded(kind: type, gt: float | None = None, ge: float | None = None) -> Callable[[Any], Any]:
    """A check for an int or a finite float within a bound and its kind's maximum; the message states both."""
    le = MAX_SECONDS if kind is float else MAX_COUNT
    bound = f"> {gt:g}" if gt is not None else f">= {ge:g}"

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"must be {'an int' if kind is int else 'a number'} {bound}")
        if kind is int and not isinstance(value, numbers.Integral):
            raise ValueError(f"must be an int {bound}")
        number = cast(float, value)  # a Real: compared as it is, so a huge int stays exact
        # an int is finite, and math.isfinite(10**400) would raise OverflowError
        if not (isinstance(value, numbers.Integral) or math.isfinite(number)) or (gt is not None and not number > gt) or (
                ge is not None and not number >= ge):
            raise ValueError(f"must be {bound} and finite")
        if number > le:
            raise ValueError(f"must be <= {le:g} s" if kind is float else f"must be <= {le:,}")
        return kind(value)

    return check


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A check that also accepts None (no limit)."""

    def optional(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (or None)") from None

    return optional


MAX_TEXT = 4096  # characters: longer than any path, id or host list a setting means


def _carried(text: str) -> str:
    """`text` unchanged, or ValueError when no file system or PVAccess peer would take it whole."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters, got {len(text)}")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError("must hold no control character or lone surrogate")
    return text


def _path(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError("must be a file path (or None)")
    path = os.fspath(value)
    if not isinstance(path, str) or not path.strip():
        raise ValueError("must be a file path (or None)")
    return _carried(path)


def _conf(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("must be a dict of EPICS_PVA_* settings")
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ValueError(f"must map names to strings (bad entries: {bad!r})")
    return dict(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or any(c.isspace() for c in value.strip()):
        raise ValueError("must be a string without spaces")
    return _carried(value.strip())


def _host_list(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError('must be a comma-separated string of addresses or host names, e.g. "10.1.2.3,host"')
    return _carried(",".join(part.strip() for part in value.split(",") if part.strip()))


def _setting(default: Any, doc: str, check: Callable[[Any], Any], variable: str | None = None,
             kind: type = object, **bounds: float) -> Any:
    if kind in (int, float):
        bounds = {**bounds, "le": MAX_SECONDS if kind is float else MAX_COUNT}
    spec = SettingSpec(doc, check, variable, kind, bounds)
    # a dict-valued setting (conf) takes no part in the hash: a dict cannot be hashed
    return field(default=default, metadata={"spec": spec}, hash=check is not _conf)


_warned: set[str] = set()


def _deprecated_once(message: str) -> None:
    """Warn (DeprecationWarning) the first time this process builds Settings with `message`."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, DeprecationWarning, stacklevel=4)


def _env(name: str) -> str:
    return f"EPICS_PVA_INTERFACE_{name.upper()}"


@dataclass(frozen=True)
class Settings:
    """Every setting of an Interface, checked once when built (ValueError naming the setting)."""

    read_only: bool = _setting(
        False, "send no put and run no validation; log what would be set", _fail_safe,
        _env("read_only"), bool)
    parallel: bool = _setting(
        True, "set the PVs of one step concurrently", _flag, _env("parallel"), bool)
    timeout: float = _setting(
        5.0, "seconds per network operation", _bounded(float, gt=0), _env("timeout"), float, gt=0)
    put_attempts: int = _setting(
        2, "puts sent in all when a put times out", _bounded(int, ge=1), _env("put_attempts"),
        int, ge=1)
    retry_delay: float = _setting(
        1.0, "seconds between put attempts", _bounded(float, ge=0), _env("retry_delay"), float,
        ge=0)
    nan_on_read_error: bool = _setting(
        False, "return NaN for unreadable PVs instead of raising", _flag,
        _env("nan_on_read_error"), bool)
    max_workers: int = _setting(
        64, "validation functions running at once at most, each in a thread (puts and readback "
        "waits need none)",
        _bounded(int, ge=1), ge=1)
    monitor_limit: int = _setting(
        10_000, "PVs whose type, limits and connection are monitored at once (least recently set "
        "dropped first)", _bounded(int, ge=1), ge=1)
    monitor_idle: float = _setting(
        600.0, "seconds after which the monitor of a PV not set since is closed",
        _bounded(float, gt=0), gt=0)
    metadata_max_age: float = _setting(
        0.0, "no effect, kept for compatibility: the monitors keep type and limits fresh "
        "(a value other than 0 warns once)", _bounded(float, ge=0), ge=0)
    validation_timeout: float | None = _setting(
        None, "seconds a validation function may run before its PV fails (None: no limit)",
        _optional(_bounded(float, gt=0)), _env("validation_timeout"), float, gt=0)
    journal: str | None = _setting(
        None, "path of a JSON Lines journal of every set_values call (None: no journal)", _path,
        _env("journal"), str)
    journal_fsync: bool = _setting(
        False, "fsync the journal after every line (slower; survives a power cut too)", _flag,
        _env("journal_fsync"), bool)
    rehearsal: bool = _setting(
        False, "write only to the soft IOC whose id is rehearsal_id, reached on loopback (or allowed) "
        "addresses only; any doubt refuses the whole set before a put", _flag, _env("rehearsal"), bool)
    rehearsal_id: str = _setting(
        "", "the id of the rehearsal's soft IOC, as its banner prints it", _text, _env("rehearsal_id"), str)
    rehearsal_allow: str = _setting(
        "", "addresses or host names besides loopback a rehearsal may search, comma separated",
        _host_list, _env("rehearsal_allow"), str)
    fresh_reads: bool = _setting(
        False, "after a set, read each PV's first update received after the set completed (waits "
        "by monitor, at most timeout s) instead of its current value", _flag, _env("fresh_reads"), bool)
    prefix: str = _setting(
        "", "put before every PV name on the wire (the soft IOC's --prefix); results keep the "
        "names as given", _text, _env("prefix"), str)
    conf: dict[str, str] | None = _setting(
        None, "p4p client configuration (EPICS_PVA_* keys) used instead of the environment", _conf)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                checked = f.metadata["spec"].check(value)
            except ValueError as exc:
                raise ValueError(f"{f.name} {exc}, not {value!r:.80}") from None
            object.__setattr__(self, f.name, checked)
        if self.rehearsal and not self.rehearsal_id:
            raise ValueError(
                "rehearsal needs rehearsal_id (EPICS_PVA_INTERFACE_REHEARSAL_ID, printed by the soft "
                "IOC's banner): without it no server can be proved to be the rehearsal's soft IOC")
        if self.metadata_max_age != 0:
            _deprecated_once("metadata_max_age has no effect any more: each PV set is monitored, "
                             "so its type and limits are always fresh; drop the setting")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed, checked like any other."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """{name: value} of every setting, as ``Interface(**...)`` takes them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def specs() -> dict[str, SettingSpec]:
    """{setting name: its SettingSpec}, in declaration order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(Settings)}


def defaults() -> dict[str, Any]:
    """{setting name: its default}."""
    return {f.name: f.default for f in dataclasses.fields(Settings)}


def parse_setting(name: str, text: str) -> Any:
    """The value of setting `name` given as environment text; ValueError naming the variable."""
    spec = specs()[name]
    variable, word = spec.variable or name, text.strip()
    if spec.kind is bool:
        if word.lower() in _TRUE:
            return True
        if word.lower() in _FALSE:
            return False
        raise ValueError(f"{variable}={text!r:.60} is not a yes/no value: use one of {sorted(_TRUE)} "
                         f"or {sorted(_FALSE)}")
    try:
        value = spec.kind(word)
    except ValueError:
        what = "an integer" if spec.kind is int else "a number"
        raise ValueError(f"{variable}={text!r:.60} is not {what}") from None
    try:
        return spec.check(value)
    except ValueError as exc:
        raise ValueError(f"{variable}={text!r:.60} {exc}") from None


#: the operator's safety switches: read at every set by epics_pva.core._guard, never taken as defaults
SWITCHES = ("read_only", "rehearsal")


def environment_settings(environ: Mapping[str, str] | None = None, switches: bool = False) -> dict[str, Any]:
    """{setting: value} given by ``EPICS_PVA_INTERFACE_*`` variables (empty ones ignored).

    These are the defaults of every ``Interface()``; arguments override them. The safety
    switches (SWITCHES) are left out unless `switches`: the write guard reads them at each set.
    Raises ValueError naming the variable when a value cannot be understood.
    """
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name, spec in specs().items():
        if spec.variable is None or (name in SWITCHES and not switches):
            continue
        text = environ.get(spec.variable, "")
        if text.strip():
            found[name] = parse_setting(name, text)
    return found
