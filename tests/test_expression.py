"""A serving soft IOC whose observable's expression overflows keeps answering (the expression
language itself, which needs no server, is tests/unit/test_expression.py)."""

import math

TOWER = "floor(q) ** floor(q) ** floor(q)"  # beyond float range for q = 9


def test_soft_ioc_keeps_answering_when_an_observable_overflows(softioc_factory, client_for, monitor):
    config = {
        "ioc": {"update_rate": 50.0},
        "setpoint": [{"name": "HANG:Q:SET", "readback": "HANG:Q:RBV", "limits": [-10.0, 10.0]}],
        "observable": [{"name": "HANG:OBJ", "expression": TOWER, "inputs": {"q": "HANG:Q:RBV"}}],
    }
    ioc = softioc_factory(config)
    ctx = client_for(ioc)
    objective = monitor(ctx, "HANG:OBJ")
    ctx.put("HANG:Q:SET", 9.0, timeout=5.0)
    objective.wait_value(lambda v: math.isnan(v), timeout=10.0)
    # the update loop is still running: the IOC answers gets and puts promptly
    assert math.isnan(ctx.get("HANG:OBJ", timeout=5.0))
    ctx.put("HANG:Q:SET", 2.0, timeout=5.0)
    assert objective.wait_value(lambda v: v == 16.0, timeout=10.0) == 16.0
    assert ctx.get("HANG:Q:RBV", timeout=5.0) == 2.0
