"""Settings: one frozen object checked once, from which Interface and the environment derive."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from epics_pva import Interface, Settings
from epics_pva.badger.settings import (
    ENVIRONMENT_VARIABLES,
    read_only_forced,
    settings_from_environment,
)
from epics_pva.core import defaults, parse_setting, specs


def test_every_setting_has_a_doc_and_a_check_and_defaults_pass_it():
    assert list(specs()) == [f.name for f in dataclasses.fields(Settings)]
    for name, spec in specs().items():
        assert spec.doc and callable(spec.check), name
    assert Settings().as_dict() == defaults()


@pytest.mark.parametrize("name, value, words", [
    ("timeout", 0, "timeout must be > 0"),
    ("timeout", math.inf, "timeout must be > 0 and finite, not inf"),
    ("timeout", math.nan, "timeout must be > 0 and finite, not nan"),
    ("retry_delay", 1e400, "retry_delay must be >= 0 and finite"),
    ("put_attempts", 1.5, "put_attempts must be an int >= 1, not 1.5"),
    ("put_attempts", True, "put_attempts must be an int >= 1, not True"),
    ("max_workers", 0, "max_workers must be >= 1"),
    ("metadata_max_age", -1, "metadata_max_age must be >= 0"),
    ("parallel", "no", "parallel must be true or false, not 'no'"),
    ("nan_on_read_error", 2, "nan_on_read_error must be true or false, not 2"),
    ("conf", "EPICS_PVA_ADDR_LIST=x", "conf must be a dict of EPICS_PVA_* settings"),
    ("conf", {"EPICS_PVA_ADDR_LIST": 1}, "conf must map names to strings"),
])
def test_a_bad_setting_is_refused_naming_it_and_the_value(name, value, words):
    with pytest.raises(ValueError) as caught:
        Settings(**{name: value})
    assert words in str(caught.value)
    with pytest.raises(ValueError, match=name):
        Interface(**{name: value})


def test_the_interface_reads_its_settings_and_cannot_be_changed_past_the_checks():
    itf = Interface(timeout=0.5, put_attempts=3)
    assert itf.settings == Settings(timeout=0.5, put_attempts=3)
    assert (itf.timeout, itf.put_attempts, itf.read_only) == (0.5, 3, False)
    with pytest.raises(AttributeError):
        itf.timeout = 0  # read-only: a new Settings (checked) is the way to change it
    with pytest.raises(dataclasses.FrozenInstanceError):
        itf.settings.timeout = 0
    replaced = Interface(itf.settings.replace(timeout=2.0))
    assert replaced.timeout == 2.0 and replaced.put_attempts == 3
    with pytest.raises(ValueError, match="timeout"):
        itf.settings.replace(timeout=-1)
    assert "timeout=0.5" in repr(itf) and "<idle; write" in repr(itf)


def test_an_interface_pickles_to_its_settings():
    itf = Interface(timeout=0.25, conf={"EPICS_PVA_ADDR_LIST": "127.0.0.1"})
    assert itf.__getstate__() == itf.settings
    assert pickle.loads(pickle.dumps(itf)).settings == itf.settings


def test_the_environment_variables_are_the_settings_that_declare_one():
    assert ENVIRONMENT_VARIABLES == {n: s.variable for n, s in specs().items() if s.variable}
    environ = {v: "1" for v in ENVIRONMENT_VARIABLES.values()}
    parsed = settings_from_environment(environ)
    assert Settings(**parsed) == Settings(**{n: parse_setting(n, "1") for n in ENVIRONMENT_VARIABLES})


@pytest.mark.parametrize("text", ["inf", "1e999", "-0.5"])
def test_environment_text_gets_the_same_checks(text):
    with pytest.raises(ValueError, match=f"EPICS_PVA_INTERFACE_RETRY_DELAY='{text}' must be >= 0"):
        settings_from_environment({"EPICS_PVA_INTERFACE_RETRY_DELAY": text})


@pytest.mark.parametrize("name, value, words", [
    ("timeout", 1e10, "timeout must be <= 3600 s, not 10000000000.0"),  # p4p raised OverflowError
    ("timeout", 3600.5, "timeout must be <= 3600 s"),
    ("retry_delay", 1e300, "retry_delay must be <= 3600 s"),
    ("monitor_idle", 1e6, "monitor_idle must be <= 3600 s"),
    ("put_attempts", 10**9, "put_attempts must be <= 1,000,000, not 1000000000"),
    ("max_workers", 10**400, "max_workers must be <= 1,000,000, not 1000000000000"),  # was OverflowError
])
def test_a_setting_beyond_any_sane_size_is_refused(name, value, words):
    with pytest.raises(ValueError) as caught:
        Settings(**{name: value})
    assert words in str(caught.value) and len(str(caught.value)) < 200
    Settings(**{name: 3600.0 if isinstance(value, float) else 1_000_000})  # the bound itself is accepted


# every EPICS_PVA_INTERFACE_* variable with text it cannot mean: a ValueError naming the variable
GARBAGE = ["nan", "NaN", "inf", "-inf", "1e999", "1e300", "9" * 5000, "-1", "abc", "0x10", "1,5",
           "\x00", "1\x00", "true false", "\ud800", "½", "10**9", "[1]", "x" * 100_000]


# what no path, id, prefix or host list can hold (any other text is a valid string setting)
TEXT_GARBAGE = ["\x00", "1\x00", "a\nb", "\ud800", "x" * 100_000]


@pytest.mark.parametrize("variable", sorted(ENVIRONMENT_VARIABLES.values()))
def test_garbage_in_an_environment_variable_is_a_value_error_naming_it(variable):
    name = next(n for n, v in ENVIRONMENT_VARIABLES.items() if v == variable)
    for text in TEXT_GARBAGE if specs()[name].kind is str else GARBAGE:
        with pytest.raises(ValueError) as caught:
            settings_from_environment({variable: text})
        assert str(caught.value).startswith(f"{variable}="), (text[:20], caught.value)
        assert len(str(caught.value)) < 300, text[:20]  # a long value is shown cut short
        # garbage in the read-only variable still forces read-only: when in doubt, do not write
        assert read_only_forced({variable: text}) == variable.endswith("READ_ONLY")
    assert settings_from_environment({variable: ""}) == {}  # empty: not set
    assert settings_from_environment({variable: "  "}) == {}
