"""Issue 10, finding 4: reading a hostile scenario is bounded: size cap, no YAML aliases, nesting
cap as exit 3 (not an internal error), quoted values cut in messages."""

from __future__ import annotations

import pytest

from vbench.commands import main
from vbench.core.errors import ScenarioError
from vbench.scenario.schema import load_scenario, load_scenario_text

GOOD = """name: s
device: disk
variants:
  - {name: a, disk: {bus: virtio}}
workloads:
  - {name: w, fio: {rw: randread}}
"""

# The 312-byte "billion laughs" of the issue: 9 levels of 9 aliases.
BOMB = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg[:500]
    return msg


def test_alias_bomb_is_refused_in_one_short_line():
    assert len(BOMB) < 400
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(BOMB)
    assert "aliases" in one_line(exc)


def test_a_single_alias_is_refused_too():
    text = GOOD.replace("workloads:\n  - {name: w, fio: {rw: randread}}",
                        "workloads:\n  - &w {name: w, fio: {rw: randread}}\n  - *w")
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text)
    assert "aliases" in one_line(exc)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_nesting_is_a_scenario_error(depth):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text("[" * depth + "]" * depth)
    assert "nested deeper" in one_line(exc)


def test_deep_nesting_exits_3_not_70(tmp_path, capsys):
    p = tmp_path / "deep.yaml"
    p.write_text("a: " + "[" * 100_000 + "]" * 100_000)
    assert main(["run", str(p)]) == 3
    assert "internal error" not in capsys.readouterr().err


def test_big_file_refused_before_parsing(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text(GOOD + "description: '" + "x" * (1 << 20) + "'\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert "larger than" in one_line(exc)


def test_fifo_or_device_is_not_read(tmp_path):
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError):
        load_scenario(fifo)  # would block forever if opened for a blocking read
    with pytest.raises(ScenarioError):
        load_scenario("/dev/zero")  # would never end


@pytest.mark.parametrize("bad", [
    "name: '" + "x" * 100_000 + "'",
    "device: '" + "d" * 100_000 + "'",
    "repetitions: [" + ",".join(["1"] * 20_000) + "]",
])
def test_quoted_values_are_cut(bad):
    text = GOOD.replace("name: s\ndevice: disk", bad if bad.startswith("name") else "name: s\n" + bad)
    if "device" not in text:
        text = "device: disk\n" + text
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text)
    one_line(exc)


def test_hostile_key_is_cut_in_the_field_path():
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(GOOD + ("k" * 50_000) + ": 1\n")
    one_line(exc)
