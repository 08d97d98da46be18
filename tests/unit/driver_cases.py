"""Shared test data for driver checks (tests/unit/test_devices.py, tests/unit/test_verify.py)."""

from __future__ import annotations


def presence_cases(model: str, with_driver: str, without: str, driver: str) -> list[tuple]:
    """The four ways a driver check can go, as ``(model, bound drivers, ok, found)``: the
    paravirtual ``model`` with its driver bound (ok) and without it (not ok, found "none"), and
    model "none" without the driver (ok) and with it (not ok: found the driver)."""
    return [(model, with_driver, True, driver), (model, without, False, "none"),
            ("none", without, True, "none"), ("none", with_driver, False, driver)]
