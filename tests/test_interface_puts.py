"""How puts are sent: one concurrent batch whose outcomes stay per PV, strings sent as they are,
and a PV known to be disconnected refused before its put."""

from __future__ import annotations

import warnings

import pytest
from p4p.client.thread import Context

from epics_pva import Interface, InvalidInputError, NotConnectedError, Settings, SetValuesError
from epics_pva.core import _settings as settings_module
from epics_pva.transport import put_many
from softioc import Outage, PutReject, PutTimeout

CONFIG = {
    "ioc": {"seed": 3, "update_rate": 50.0},
    "setpoint": [
        {"name": "M:A:SET", "readback": "M:A:RBV", "limits": [-10, 10]},
        {"name": "M:B:SET", "readback": "M:B:RBV", "limits": [-10, 10]},
        {"name": "M:C:SET", "readback": "M:C:RBV", "limits": [-10, 10]},
        {"name": "M:TEXT:SET", "type": "string"},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


def test_one_timeout_in_a_batch_leaves_the_other_outcomes_alone(soft_ioc, pva_client):
    """p4p's own multi-put reports every PV as timed out when one is; put_many does not."""
    soft_ioc.faults.arm("M:B:SET", PutTimeout(count=1))
    soft_ioc.faults.arm("M:C:SET", PutReject(message="interlock open"))
    outcomes = put_many(pva_client, ["M:A:SET", "M:B:SET", "M:C:SET"], [1.0, 2.0, 3.0], timeout=0.5)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], TimeoutError)
    assert "interlock open" in str(outcomes[2])
    assert [(r.pv, r.outcome) for r in soft_ioc.audit.puts()] == [
        ("M:A:SET", "accepted"), ("M:B:SET", "timed_out"), ("M:C:SET", "rejected")]


def test_an_unknown_pv_in_a_batch_times_out_alone(soft_ioc, pva_client):
    outcomes = put_many(pva_client, ["M:A:SET", "NO:SUCH:PV"], [1.0, 2.0], timeout=0.3)
    assert outcomes[0] is None and isinstance(outcomes[1], TimeoutError)
    assert [r.pv for r in soft_ioc.audit.puts()] == ["M:A:SET"]


def test_a_string_that_looks_like_json_is_sent_as_it_is(soft_ioc, pva_client):
    text = '{"not": "a structure"}'
    with Interface(conf=soft_ioc.client_conf(), timeout=2.0) as itf:
        itf.set_values({"M:TEXT:SET": text})
        assert itf.get_value("M:TEXT:SET") == text
    assert [r.value for r in soft_ioc.audit.puts("M:TEXT:SET")] == [text]


def test_parallel_sets_report_a_retried_pv_and_the_others_as_set(soft_ioc):
    soft_ioc.faults.arm("M:B:SET", PutTimeout(count=1))
    # timeout: the first search, connection and monitor value of three PVs fit in it on a
    # loaded machine too (0.5 s did not, once in a suite run beside two busy processes)
    with Interface(conf=soft_ioc.client_conf(), timeout=2.0, retry_delay=0.05) as itf:
        results = itf.set_values({"M:A:SET": 1.0, "M:B:SET": 2.0, "M:C:SET": 3.0})
    assert {pv: (r.status, r.attempts) for pv, r in results.items()} == {
        "M:A:SET": ("set", 1), "M:B:SET": ("set", 2), "M:C:SET": ("set", 1)}
    assert [r.outcome for r in soft_ioc.audit.puts("M:B:SET")] == ["timed_out", "accepted"]


def test_a_pv_seen_disconnecting_is_refused_unsent_naming_every_pv(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=0.3) as itf:
        itf.set_values({"M:A:SET": 1.0, "M:B:SET": 1.0})
        soft_ioc.faults.arm("M:A:SET", Outage(duration=30))
        assert itf._monitors.wait_for("M:A:SET", lambda state, _: state == "disconnected", 5.0)
        with pytest.raises(NotConnectedError, match="M:A:SET.*disconnected") as refused:
            itf.set_values({"M:A:SET": 2.0, "M:B:SET": 2.0})
    assert isinstance(refused.value, InvalidInputError) and isinstance(refused.value, SetValuesError)
    assert set(refused.value.problems) == {"M:A:SET"}
    results = refused.value.results
    assert {pv: (r.status, r.value) for pv, r in results.items()} == {
        "M:A:SET": ("not_attempted", 2.0), "M:B:SET": ("not_attempted", 2.0)}
    assert "disconnected" in results["M:A:SET"].reason
    assert "1 other input(s) refused" in results["M:B:SET"].reason
    assert [(r.pv, r.value) for r in soft_ioc.audit.puts()] == [("M:A:SET", 1.0), ("M:B:SET", 1.0)]


def test_metadata_max_age_is_accepted_and_does_nothing_but_warn_once(monkeypatch):
    monkeypatch.setattr(settings_module, "_warned", set())
    with pytest.warns(DeprecationWarning, match="metadata_max_age has no effect"):
        settings = Settings(metadata_max_age=60.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = Interface(metadata_max_age=60.0)  # once per process: no second warning
    assert again.metadata_max_age == settings.metadata_max_age == 60.0  # kept, for compatibility


def test_metadata_max_age_must_not_be_negative():
    with pytest.raises(ValueError, match="metadata_max_age"):
        Interface(metadata_max_age=-1)


def test_put_many_on_a_closed_context_reports_each_pv(soft_ioc):
    ctx = Context("pva", conf=soft_ioc.client_conf(), useenv=False)
    ctx.close()
    outcomes = put_many(ctx, ["M:A:SET", "M:B:SET"], [1.0, 2.0], timeout=0.2)
    assert all(isinstance(o, BaseException) for o in outcomes)
    assert soft_ioc.audit.puts() == []
