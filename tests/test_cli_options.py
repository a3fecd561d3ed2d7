"""Every command's options refuse values it cannot use: an argparse error (exit status 2) naming
the option and the value, before anything is loaded, served or sent.

Numbers that are not finite, beyond float range or any sane time, negative ports and timeouts,
ports above 65535, names with NUL or spaces. In process (each command's `main(argv)`), bounded:
a property test searches the numeric options with generated text.
"""

from __future__ import annotations

import math

import pytest
from _hypothesis import within
from hypothesis import given
from hypothesis import strategies as st

from epics_pva.badger import __main__ as badger_cli
from epics_pva.badger import dryrun
from epics_pva.tools import journal_cli, preflight
from softioc import Machine
from softioc import cli as softioc_cli

ENV = "no-such-environment"
# (command's main, the arguments before the option, the option, bad values)
BAD = [
    (softioc_cli.main, ["ioc.toml"], "--port", ["-1", "65536", "99999999999", "1e3", "nan", "", "80\x00"]),
    (softioc_cli.main, ["ioc.toml"], "--broadcast-port", ["-5076", "70000", "inf"]),
    (softioc_cli.main, ["ioc.toml"], "--duration", ["nan", "inf", "-1", "1e300", "1e400", "x"]),
    (softioc_cli.main, ["ioc.toml"], "--host", ["", "127.0.0.1 ", "a b", "127.0.0.1\x00", "\x1b[2J", "h" * 256]),
    (softioc_cli.main, ["ioc.toml"], "--log-level", ["LOUD", "", "info\x00"]),
    # 0 once served one process silently (it fell back to [ioc] processes)
    (softioc_cli.main, ["ioc.toml"], "--processes", ["0", "-1", "65", "1.5", "nan", "9" * 5000]),
    (softioc_cli.main, ["ioc.toml"], "--shard", ["-1", "64", "x"]),
    (preflight.main, ["X:A"], "--timeout", ["0", "-1", "nan", "inf", "1e300", "3601", "abc"]),
    (preflight.main, ["X:A"], "--update-time", ["-0.5", "nan", "-inf", "1e10"]),
    (preflight.main, ["X:A"], "--setpoint", ["A\x00B", "A B", "", "\ud800", "\t"]),
    (preflight.main, ["X:A"], "--readback", ["R\x00"]),
    (preflight.main, ["X:A"], "--observable", ["O\n"]),
    (dryrun.main, [ENV], "--tau", ["0", "-1", "nan", "inf", "1e400"]),
    (dryrun.main, [ENV], "--rate", ["0", "nan"]),
    (dryrun.main, [ENV], "--noise", ["-1e-9", "nan", "inf"]),
    (dryrun.main, [ENV], "--observable-noise", ["-1", "nan"]),
    (dryrun.main, [ENV], "--initial-fraction", ["-0.1", "1.5", "nan"]),
    (dryrun.main, [ENV], "--seed", ["-1", "1.5", "9" * 5000, "nan"]),
    (dryrun.main, [ENV], "--update-rate", ["0", "-10", "inf", "nan"]),
    (dryrun.main, [ENV], "--time-scale", ["0", "inf"]),
    (badger_cli.main, ["run", ENV, "--plugin-root", "root"], "--evaluations", ["0", "-1", "1e9", "10000000", "9" * 5000]),
    (badger_cli.main, ["run", ENV, "--plugin-root", "root"], "--generator-params",
     ["[1]", "1", '{"x": NaN}', '{"x": Infinity}', '{"x": [1e999]}', "{" * 5000, "[" * 100_000, "{bad", '{"a": 1}' + " " * 100_000]),
    (journal_cli.main, ["show", "j.jsonl"], "--since", ["nan", "inf", "-1", "1e300", "0001-01-01T00:00", "someday"]),
    (journal_cli.main, ["restore", "j.jsonl"], "--until", ["-inf", "1e20"]),
    (journal_cli.main, ["restore", "j.jsonl"], "--timeout", ["0", "-1", "nan", "inf", "1e300", "3601"]),
]
CASES = [(main, before, option, value) for main, before, option, values in BAD for value in values]


def _refused(main, argv, capsys) -> str:
    """Run main(argv); it must exit with status 2 (argparse's usage error); returns stderr."""
    kind, result = within(main, argv)
    assert kind == "error" and isinstance(result, SystemExit), (argv[-2:], kind, result)
    assert result.code == 2, (argv[-2:], result.code)
    return capsys.readouterr().err


@pytest.mark.parametrize(("main", "before", "option", "value"), CASES,
                         ids=[f"{c[2]}={c[3][:12]!r}" for c in CASES])
def test_a_bad_option_value_is_an_argparse_error_naming_the_option_and_the_value(
        main, before, option, value, capsys):
    err = _refused(main, [*before, f"{option}={value}"], capsys)
    assert f"argument {option}: " in err, err[-300:]
    assert repr(value)[:12] in err or "characters" in err, err[-300:]
    assert len(err) < 2000  # a huge value is shown cut short


def test_the_bounds_themselves_are_accepted():
    assert softioc_cli.build_parser().parse_args(
        ["c.toml", "--port", "65535", "--broadcast-port", "0", "--duration", "0", "--log-level", "debug"]
    ).log_level == "DEBUG"
    args = preflight.build_parser().parse_args(["X:A", "--timeout", "3600", "--update-time", "0"])
    assert (args.timeout, args.update_time) == (3600.0, 0.0)
    args = dryrun.build_parser().parse_args([ENV, "--initial-fraction", "1", "--noise", "0", "--seed", "0"])
    assert (args.initial_fraction, args.noise, args.seed) == (1.0, 0.0, 0)
    args = badger_cli.build_parser().parse_args(
        ["run", ENV, "--plugin-root", "r", "--evaluations", "1000000", "--generator-params", '{"a": [1.5]}'])
    assert (args.evaluations, args.generator_params) == (1_000_000, {"a": [1.5]})
    assert journal_cli.build_parser().parse_args(["restore", "j", "--timeout", "3600"]).timeout == 3600.0


# (parser, arguments before the option, option, the accepted range)
NUMERIC = [
    (softioc_cli.build_parser, ["c.toml"], "--port", (0, 65535)),
    (softioc_cli.build_parser, ["c.toml"], "--duration", (0, 1e7)),
    (softioc_cli.build_parser, ["c.toml"], "--processes", (1, 64)),
    (preflight.build_parser, ["X:A"], "--timeout", (0, 3600)),
    (dryrun.build_parser, [ENV], "--initial-fraction", (0, 1)),
    (dryrun.build_parser, [ENV], "--tau", (0, math.inf)),
    (badger_cli.build_parser, ["run", ENV, "--plugin-root", "r"], "--evaluations", (1, 1_000_000)),
    (journal_cli.build_parser, ["restore", "j"], "--timeout", (0, 3600)),
]
texts = st.one_of(
    st.floats().map(repr), st.integers().map(str), st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.text(max_size=12), st.sampled_from(["nan", "-nan", "+inf", "1e999", "0x10", "1_000", "٣", " 5 ", "5\x00"]),
)


@given(st.sampled_from(NUMERIC), texts)
def test_numeric_options_give_a_value_within_their_range_or_an_argparse_error(option, text):
    build, before, name, (low, high) = option
    kind, result = within(build().parse_args, [*before, f"{name}={text}"])
    if kind == "error":
        assert isinstance(result, SystemExit) and result.code == 2, (name, text, result)
    else:
        value = getattr(result, name.lstrip("-").replace("-", "_"))
        assert low <= value <= high and math.isfinite(value), (name, text, value)


@pytest.mark.parametrize("processes", [0, -1, 65])
def test_a_machine_of_no_processes_is_refused_not_served_by_one(processes):
    with pytest.raises(ValueError, match=rf"processes must be within \[1, 64\], got {processes}"):
        Machine({"ioc": {"processes": 2}, "setpoint": [{"name": "A:SET"}]}, processes=processes)
