"""Settings: one frozen object checked once, from which Interface and the environment derive."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from epics_pva import Interface, Settings
from epics_pva.badger.settings import ENVIRONMENT_VARIABLES, settings_from_environment
from epics_pva.settings import defaults, parse_setting, specs


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
    assert "timeout=0.5" in repr(itf) and "<idle>" in repr(itf)


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
