"""The loader's limits: what a config may ask for in all, and how long loading it may take.

Every limit is checked before the work it guards (no name is generated for a document that
asks for too many), and every refusal is a ConfigError naming the key and the limit.
"""

from __future__ import annotations

import time

import pytest

from softioc import ConfigError, load_config


def _observables_of_setpoints(count: int) -> dict:
    return {
        "setpoint_range": [{"name": "SP:{i}:SET", "readback": "SP:{i}:RBV", "count": count}],
        "observable_range": [{"name": "OB:{i}", "expression": "2 * x", "inputs": {"x": "SP:{i}:SET"},
                              "count": count}],
    }


def test_twenty_thousand_observables_of_setpoints_load_in_linear_time():
    """Measured on 2 loaded cores: 30.5 s before the input check was linear (one set of
    setpoint names per input), 2.0 s after (as with readbacks as inputs); 15 s guards a hang."""
    began = time.monotonic()
    config = load_config(_observables_of_setpoints(20_000))
    assert time.monotonic() - began < 15.0
    assert len(config.observables) == 20_000 and config.observables[-1].inputs == {"x": "SP:19999:SET"}


def test_an_input_that_is_no_pv_of_the_ioc_is_still_named():
    doc = _observables_of_setpoints(3)
    doc["observable"] = [{"name": "LOST", "expression": "x", "inputs": {"x": "NOWHERE"}}]
    with pytest.raises(ConfigError, match=r"\[\[observable\]\] #1 \('LOST'\): key 'inputs.x' names 'NOWHERE'"):
        load_config(doc)
