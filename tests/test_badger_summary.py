"""What Badger's Retry/Stop dialog shows of our errors: the PV and the cause on its first lines.

Xopt keeps an evaluation's exception only as `traceback.format_exc()` text, which Badger's
dialog shows; Python prints an exception's causes first, so the plugin chains a one-line
summary (epics_pva.badger.PvFailure) before the rest. No Badger needed but for the last test.
"""

from __future__ import annotations

import traceback

import pytest

from epics_pva import (
    ContextClosedError,
    InvalidInputError,
    NotConnectedError,
    PutError,
    PutTimeoutError,
    ReadError,
    RehearsalError,
    SetValuesError,
    ValidationError,
)
from epics_pva.badger import PvFailure
from epics_pva.badger.summary import lead_with_summary, summary_of
from epics_pva.results import SetResult, Status


def as_xopt_keeps_it(exc: BaseException) -> str:
    """The text Xopt records for an evaluation that raised `exc` (and Badger's dialog shows)."""
    try:
        raise exc
    except BaseException:
        return traceback.format_exc()


def failed_set() -> SetValuesError:
    rejected = PutError("DEMO:Q2:SET", 0.5, "put rejected by the server: interlock open")
    return SetValuesError({
        "DEMO:Q1:SET": SetResult("DEMO:Q1:SET", 1.0, Status.SET, 1),
        "DEMO:Q2:SET": SetResult("DEMO:Q2:SET", 0.5, Status.FAILED, 1, error=rejected),
    })


@pytest.mark.parametrize("error, summary", [
    (failed_set(), "DEMO:Q2:SET = 0.5: put rejected by the server: interlock open"),
    (ReadError({"DEMO:OBJ": "alarm INVALID (power supply off)"}, {"DEMO:Q1:RBV": 1.0}),
     "cannot read DEMO:OBJ: alarm INVALID (power supply off)"),
    (InvalidInputError({"DEMO:Q2:SET": "3.0 is outside the PV's control limits [-2, 2]"}),
     "refused before any put: DEMO:Q2:SET: 3.0 is outside the PV's control limits [-2, 2]"),
    (NotConnectedError({"DEMO:Q1:SET": "not connected"}, results={}),
     "refused before any put: DEMO:Q1:SET: not connected"),
    (RehearsalError({"DEMO:Q1:SET": "DEMO:Q1:SET is served by a server that is not the rehearsal's soft IOC"},
                    {"DEMO:Q1:SET": 1.0}),
     "rehearsal refused the set, nothing was sent: DEMO:Q1:SET is served by a server that is not the "
     "rehearsal's soft IOC"),
    (PutTimeoutError("DEMO:Q1:SET", 1.0, 2, 1.0),
     "DEMO:Q1:SET = 1.0: put timed out on all 2 attempt(s) (no completion within 1 s each)"),
    (ValidationError("DEMO:Q1:SET", 1.0, TimeoutError("readback DEMO:Q1:RBV did not settle")),
     "DEMO:Q1:SET = 1.0: validation failed: readback DEMO:Q1:RBV did not settle"),
])
def test_the_summary_names_each_pv_and_why(error, summary):
    assert summary_of(error) == summary
    printed = as_xopt_keeps_it(lead_with_summary(error))
    assert printed.splitlines()[0] == f"epics_pva.badger.PvFailure: {summary.splitlines()[0]}"
    assert printed.index("The above exception was the direct cause") < printed.index("Traceback")
    assert printed.rstrip().endswith(str(error).splitlines()[-1])  # the error itself is unchanged, last


def test_several_failed_pvs_give_one_line_each():
    error = failed_set()
    error.results["DEMO:Q1:SET"] = SetResult("DEMO:Q1:SET", 1.0, Status.FAILED, 2,
                                             error=PutTimeoutError("DEMO:Q1:SET", 1.0, 2, 1.0))
    error = SetValuesError(error.results)
    assert summary_of(error).splitlines() == [
        "DEMO:Q1:SET = 1.0: put timed out on all 2 attempt(s) (no completion within 1 s each)",
        "DEMO:Q2:SET = 0.5: put rejected by the server: interlock open",
    ]


def test_an_error_naming_no_pv_is_left_as_it_is():
    closed = ContextClosedError("the client context was closed")
    assert summary_of(closed) is None and lead_with_summary(closed).__cause__ is None
    assert summary_of(RuntimeError("a bug")) is None


def test_causes_are_kept_and_the_summary_goes_first_once():
    error = PutError("DEMO:Q2:SET", 0.5, "put rejected by the server: interlock open")
    try:
        try:
            raise RuntimeError("remote: interlock open")
        except RuntimeError as remote:
            raise error from remote
    except PutError:
        pass
    lead_with_summary(error)
    lead_with_summary(error)  # a second pass adds nothing
    assert isinstance(error.__cause__, RuntimeError) and isinstance(error.__cause__.__cause__, PvFailure)
    printed = "".join(traceback.format_exception(error))
    assert printed.startswith("epics_pva.badger.PvFailure: DEMO:Q2:SET = 0.5: put rejected")
    assert printed.count("PvFailure") == 1 and "RuntimeError: remote: interlock open" in printed


def test_the_plugin_raises_its_errors_leading_with_the_summary(softioc_factory):
    pytest.importorskip("badger")
    from epics_pva.badger import Interface
    from softioc import PutReject
    from softioc.pytest_plugin import demo_config_path

    ioc = softioc_factory(demo_config_path())
    ioc.faults.arm("DEMO:Q2:SET", PutReject(message="interlock open"))
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        with pytest.raises(SetValuesError) as caught:
            interface.set_values({"DEMO:Q1:SET": 1.0, "DEMO:Q2:SET": 0.5})
        assert interface.last_results == caught.value.results  # kept as before
    with Interface(conf=ioc.client_conf(), timeout=0.3) as quick, pytest.raises(ReadError) as unreadable:
        quick.get_values(["DEMO:NOPE"])
    assert as_xopt_keeps_it(caught.value).splitlines()[0] == (
        "epics_pva.badger.PvFailure: DEMO:Q2:SET = 0.5: put rejected by the server: interlock open")
    assert isinstance(caught.value.__cause__, PvFailure)
    assert str(unreadable.value.__cause__).startswith("cannot read DEMO:NOPE: ")
