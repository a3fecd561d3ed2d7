"""Config values at their limits, as a client reads them from a serving soft IOC (the config
reader's own checks, which need no server, are tests/unit/test_config.py)."""


def test_a_pv_name_of_the_longest_length_is_served(softioc_factory, client_for):
    name = "L" * 1000
    ctx = client_for(softioc_factory({"setpoint": [{"name": name, "initial": 2.5}]}))
    assert ctx.get(name, timeout=5.0) == 2.5


def test_text_at_the_limits_is_served_unchanged(softioc_factory, client_for):
    choices = ["é" * 1000, "Ω", "on"]
    ctx = client_for(softioc_factory({"setpoint": [
        {"name": "T:E", "type": "enum", "choices": choices},
        {"name": "T:D", "units": "µ" * 1000, "description": "Δ" * 1000, "precision": 17},
    ]}))
    assert list(ctx.get("T:E", timeout=5.0).raw.value.choices) == choices
    display = ctx.get("T:D", timeout=5.0).raw.display
    assert (display.units, display.description) == ("µ" * 1000, "Δ" * 1000)
