"""What the client (epics_pva) and the soft IOC must agree on, though neither imports the other.

`epics_pva` and `softioc` never import each other, so a name both use is defined twice; these
tests hold each pair together: the identity field a soft IOC publishes and the client reads,
and the lag models the soft IOC steps and the client's calibration fits.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from epics_pva.tools.calibration.fits import LAG_MODELS
from epics_pva.transport import SERVER_ID_FIELD
from softioc.model import LAGS
from softioc.server import IDENTITY, IDENTITY_FIELD

# the fit's parameter name -> the setpoint config key the soft IOC's lag reads it from
CONFIG_KEY = {"tau_s": "tau", "rate_per_s": "rate"}


def test_the_identity_field_is_the_one_the_client_reads():
    assert IDENTITY_FIELD == SERVER_ID_FIELD
    assert IDENTITY == [(SERVER_ID_FIELD, "s")]  # a string field at the top of every PV


def test_the_client_fits_every_lag_model_the_soft_ioc_steps():
    assert set(LAG_MODELS) == set(LAGS)
    assert {m.parameter for m in LAG_MODELS.values()} - {None} == set(CONFIG_KEY)


@pytest.mark.parametrize("name", sorted(LAGS))
@pytest.mark.parametrize("x0, target, parameter", [(0.0, 1.0, 0.5), (2.0, -3.0, 4.0), (-1.0, -1.0, 0.1),
                                                   (10.0, 9.5, 2.0)])
def test_each_lag_stepped_by_the_soft_ioc_follows_the_curve_the_client_fits(name, x0, target, parameter):
    """n steps of dt simulated seconds land where the fit's response says the readback is at t = n dt."""
    model = LAG_MODELS[name]
    cfg = types.SimpleNamespace(**{key: parameter for key in CONFIG_KEY.values()})
    dt, state = 0.05, x0
    for n in range(1, 81):
        state = LAGS[name](state, target, dt, cfg)
        expected = model.respond(np.asarray(n * dt), np.asarray(x0), target, np.asarray(parameter))
        assert float(state) == pytest.approx(float(expected), rel=1e-9, abs=1e-12), (name, n)
