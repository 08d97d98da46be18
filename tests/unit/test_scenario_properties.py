"""Property tests of the scenario loader: any input gives a Scenario or one clear ScenarioError
line, never another exception (bad input must never become a traceback)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbench.core.errors import ScenarioError
from vbench.scenario.schema import Scenario, load_scenario_text

ROOT = Path(__file__).resolve().parents[2]
BASES = [yaml.safe_load((ROOT / "scenarios" / f"{n}.yaml").read_text())
         for n in ("disk", "net", "rng", "balloon")]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                    st.dictionaries(st.text(max_size=12), c, max_size=4)),
                      max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _check(text: str) -> None:
    try:
        scn = load_scenario_text(text, where="x.yaml")
    except ScenarioError as exc:
        msg = str(exc)
        assert msg.startswith("x.yaml") and "\n" not in msg and "Traceback" not in msg
    else:
        assert isinstance(scn, Scenario)
        for v in scn.variants:  # a valid scenario must resolve every variant's profile
            scn.profile(v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(BASES))), st.data(), values)
def test_one_mutated_field_never_crashes(base_index, data, new_value):
    doc = copy.deepcopy(BASES[base_index])
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = new_value
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    _check(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text):
    _check(text)


@settings(max_examples=100, deadline=None)
@given(values)
def test_arbitrary_documents_never_crash(doc):
    _check(yaml.safe_dump(doc, allow_unicode=True))
