"""Scenario loading and validation: shipped scenarios load, bad input gives one clear line.

Every bad input must raise ScenarioError (a UserError, exit status 3) whose message is one line,
names the field path and says what is allowed, e.g.
``variants[1].disk.bus: must be one of virtio, scsi, sata, ide, nvme (got 'usb')``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.core.errors import ScenarioError, UserError
from vbench.scenario.schema import (
    DeviceProfile,
    DiskSpec,
    RngSpec,
    load_scenario,
    load_scenario_text,
    parse_profile,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))

# A valid disk scenario; the bad inputs below are small edits of it.
GOOD = """\
name: t
device: disk
defaults:
  disk: {size_gib: 1}
variants:
  - name: vblk
    disk: {bus: virtio}
  - name: sata
    disk: {bus: sata}
workloads:
  - name: rr
    fio: {rw: randread, bs: 4k, iodepth: 32}
"""


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text)
    msg = str(exc.value)
    assert_one_line(msg)
    return msg


def assert_one_line(msg: str) -> None:
    assert msg, "an error message must not be empty"
    assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
    assert "Traceback" not in msg


# ---- shipped scenarios -----------------------------------------------------------------------

def test_there_are_shipped_scenarios():
    names = {p.name for p in SHIPPED}
    assert {"disk.yaml", "smoke-disk.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_loads(path):
    scn = load_scenario(path)
    assert scn.name == path.stem
    assert scn.variants and scn.workloads
    # Every variant's full profile carries the device under test, and it differs between variants.
    models = [scn.profile(v).model_of(scn.device) for v in scn.variants]
    assert "absent" not in models
    # Variants may share a model and differ in a knob (qcow2 vs raw, iothread): never in nothing.
    specs = [getattr(scn.profile(v), scn.device).model_dump_json() for v in scn.variants]
    assert len(set(specs)) == len(specs), f"{path.name}: two variants test the same {scn.device}"


def test_disk_scenario_has_the_four_buses():
    scn = load_scenario(ROOT / "scenarios" / "disk.yaml")
    assert [scn.profile(v).disk.bus for v in scn.variants] == ["virtio", "scsi", "sata", "ide"]
    assert scn.host_baseline is True


def test_good_scenario_loads():
    scn = load_scenario_text(GOOD)
    assert [v.name for v in scn.variants] == ["vblk", "sata"]
    assert scn.repetitions == 3 and scn.order == "interleaved"  # documented defaults


# ---- bad inputs: each gives one line naming the field path and what is allowed ----------------

BAD = [
    pytest.param(GOOD.replace("{bus: sata}", "{bus: usb}"),
                 ["variants[1].disk.bus", "must be one of virtio, scsi, sata, ide, nvme", "'usb'"],
                 id="bad-disk-bus"),
    pytest.param(GOOD.replace("device: disk", "device: gpu"),
                 ["device", "disk", "nic", "rng", "balloon", "'gpu'"], id="bad-device-kind"),
    pytest.param(GOOD.replace("rw: randread", "rw: scramble"),
                 ["workloads[0].fio.rw", "randread", "'scramble'"], id="bad-fio-rw"),
    pytest.param(GOOD + "order: random\n",
                 ["order", "interleaved", "sequential"], id="bad-order"),
    pytest.param(GOOD.replace("{bus: sata}", "{bus: sata, cache: bogus}"),
                 ["variants[1].disk.cache", "none", "writeback"], id="bad-cache"),
    pytest.param(GOOD + "colour: blue\n", ["colour", "unknown field"], id="unknown-top-field"),
    pytest.param(GOOD.replace("{bus: sata}", "{bus: sata, speed: 9}"),
                 ["variants[1].disk.speed", "unknown field"], id="unknown-nested-field"),
    pytest.param(GOOD.replace("name: t\n", ""), ["name", "is required"], id="missing-name"),
    pytest.param(GOOD.replace("device: disk\n", ""), ["device", "is required"], id="missing-device"),
    pytest.param(GOOD.replace("    fio: {rw: randread, bs: 4k, iodepth: 32}",
                              "    fio: {bs: 4k}"),
                 ["workloads[0].fio.rw", "is required"], id="missing-fio-rw"),
    pytest.param(GOOD.replace("name: sata", "name: vblk"),
                 ["variant names must be unique"], id="duplicate-variant"),
    pytest.param(GOOD.replace("name: sata", "name: host"),
                 ["'host'", "reserved"], id="variant-named-host"),
    pytest.param(GOOD.replace("    disk: {bus: sata}", "    disk: {bus: sata}\n    nic: {model: e1000}"),
                 ["variants[1].nic", "only the device under test (disk)", "defaults"],
                 id="non-dut-section-in-variant"),
    pytest.param(GOOD.replace("name: rr", "name: 'r r'"),
                 ["workloads[0].name", "'r r'", "letters, digits"], id="bad-workload-name"),
    pytest.param(GOOD.replace("{bus: sata}", "{bus: sata, size_gib: 0}"),
                 ["variants[1].disk.size_gib", "greater than 0"], id="disk-size-zero"),
    pytest.param(GOOD.replace("{bus: sata}", "{bus: sata, cache: writeback}"),
                 ["variants[1].disk", "io 'native' needs cache 'none' or 'directsync'"],
                 id="native-io-needs-direct"),
    pytest.param(GOOD + "repetitions: 0\n", ["repetitions", "greater than or equal to 1"],
                 id="zero-repetitions"),
    pytest.param(GOOD.replace("variants:\n  - name: vblk\n    disk: {bus: virtio}\n"
                              "  - name: sata\n    disk: {bus: sata}\n", "variants: []\n"),
                 ["variants", "at least 1"], id="no-variants"),
    pytest.param(GOOD.replace("    fio: {rw: randread, bs: 4k, iodepth: 32}",
                              "    fio: {rw: randread}\n    ping: {count: 10}"),
                 ["workloads[0]", "exactly one of fio, iperf3, ping, entropy, balloon, fsmeta"],
                 id="two-tools-in-workload"),
    pytest.param(GOOD.replace("device: disk", "device: nic\nhost_baseline: true")
                     .replace("disk: {size_gib: 1}", "nic: {model: virtio}")
                     .replace("disk: {bus: virtio}", "nic: {model: virtio}")
                     .replace("disk: {bus: sata}", "nic: {model: e1000}"),
                 ["host_baseline", "disk"], id="host-baseline-not-disk"),
    pytest.param(GOOD.replace("    disk: {bus: virtio}\n", "").replace("  disk: {size_gib: 1}\n", "")
                     .replace("defaults:\n", ""),
                 ["variants[0]", "sets no disk"], id="variant-without-dut"),
]


@pytest.mark.parametrize("text, needles", BAD)
def test_bad_scenario_gives_one_line_with_path(text, needles):
    msg = error_of(text)
    for needle in needles:
        assert needle in msg, f"{needle!r} missing from {msg!r}"


def test_bad_bus_message_is_exactly_the_documented_one():
    msg = error_of(GOOD.replace("{bus: sata}", "{bus: usb}"))
    assert msg == "scenario: variants[1].disk.bus: must be one of virtio, scsi, sata, ide, nvme (got 'usb')"


def test_several_problems_are_counted_not_listed():
    msg = error_of(GOOD.replace("{bus: sata}", "{bus: usb}") + "colour: blue\n")
    assert "(and 1 more problem)" in msg


def test_scenario_error_is_a_user_error_with_status_3():
    with pytest.raises(UserError) as exc:
        load_scenario_text(GOOD.replace("{bus: sata}", "{bus: usb}"))
    assert isinstance(exc.value, ScenarioError)
    assert exc.value.exit_status == 3


def test_where_prefix_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(GOOD.replace("{bus: sata}", "{bus: usb}"))
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert str(exc.value).startswith(f"{p}: variants[1].disk.bus: ")


# ---- YAML, document shape, files ---------------------------------------------------------------

def test_bad_yaml_names_line_and_column():
    text = "name: t\ndevice: disk\nvariants: [a, b\nworkloads: []\n"
    msg = error_of(text)
    assert "not valid YAML" in msg
    assert "line 4, column" in msg  # the flow sequence is still open when the next key starts


def test_tab_indentation_names_line_and_column():
    msg = error_of("name: t\n\tdevice: disk\n")
    assert "not valid YAML at line 2, column" in msg


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"),
                                        ("42\n", "int")])
def test_non_mapping_document(text, kind):
    msg = error_of(text)
    assert "expected a mapping" in msg and f"(got {kind})" in msg


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_document_says_it_is_empty(text):
    msg = error_of(text)
    assert "the file is empty" in msg and "scenarios/disk.yaml" in msg


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert_one_line(msg)
    assert str(p) in msg and "no such scenario file" in msg


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ScenarioError) as exc:
        load_scenario(tmp_path)
    assert_one_line(str(exc.value))
    assert "cannot read" in str(exc.value)


def test_binary_file(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert_one_line(str(exc.value))


# ---- fio options: nothing vbench sets itself, nothing a shell would interpret ----------------

def with_options(opts: str) -> str:
    return GOOD.replace("fio: {rw: randread, bs: 4k, iodepth: 32}",
                        "fio: {rw: randread, bs: 4k, iodepth: 32, options: " + opts + "}")


@pytest.mark.parametrize("opts, needle", [
    ("{filename: /dev/vda}", "'filename'"),
    ("{name: other}", "'name'"),
    ("{output: /tmp/x}", "'output'"),
    ("{output_format: normal}", "'output_format'"),
    ("{'output-format': normal}", "'output-format'"),
    ("{size: '1G; reboot'}", "'1G; reboot'"),
    ("{size: '1G reboot'}", "'1G reboot'"),
    ("{size: '$(reboot)'}", "'$(reboot)'"),
    ("{size: '`reboot`'}", "'`reboot`'"),
    ("{size: \"1G\\nfilename=/dev/vda\"}", "size"),
    ("{'size --filename': 1G}", "not supported"),
    ("{Size: 1G}", "not supported"),
], ids=["filename", "name", "output", "output_format", "output-format", "semicolon", "space",
        "subshell", "backticks", "newline", "space-in-name", "uppercase-name"])
def test_fio_option_injection_refused(opts, needle):
    msg = error_of(with_options(opts))
    assert "workloads[0].fio.options" in msg
    assert needle in msg


def test_fio_plain_options_accepted():
    scn = load_scenario_text(with_options("{size: 512M, norandommap: true, rwmixread: 70, "
                                          "cpus_allowed: '0,1'}"))
    w = scn.workloads[0]
    opts = scn.fio_options(w)
    assert opts["size"] == "512M" and opts["norandommap"] is True and opts["rwmixread"] == 70
    # defaults first, then the workload's own fields
    assert opts["ioengine"] == "libaio" and opts["direct"] == 1
    assert (opts["rw"], opts["bs"], opts["iodepth"], opts["numjobs"]) == ("randread", "4k", 32, 1)
    assert "group_reporting" not in opts


def test_fio_group_reporting_with_several_jobs():
    scn = load_scenario_text(GOOD.replace("iodepth: 32}", "iodepth: 32, numjobs: 4}"))
    assert scn.fio_options(scn.workloads[0])["group_reporting"] == 1


def test_fio_runtime_defaults_and_override():
    scn = load_scenario_text(GOOD.replace("iodepth: 32}", "iodepth: 32, ramp_time: 0}")
                             + "fio_defaults: {runtime: 7, ramp_time: 3}\n")
    assert scn.fio_runtime(scn.workloads[0]) == (7, 0)  # ramp_time 0 is a value, not "unset"


@pytest.mark.parametrize("opts", ["{filename: /dev/vda}", "{size: '1G; reboot'}"])
def test_fio_defaults_options_are_validated_too(opts):
    error_of(GOOD + f"fio_defaults: {{options: {opts}}}\n")


def test_empty_fio_option_value_refused_at_load():
    msg = error_of(with_options("{size: ''}"))
    assert "workloads[0].fio.options" in msg


def test_every_accepted_fio_option_is_accepted_by_fio_argv():
    """What the scenario lets through, the probe must take (else it fails after booting)."""
    from vbench.workloads.fio import fio_argv

    scn = load_scenario_text(with_options("{size: 512M, norandommap: true, rwmixread: 70, "
                                          "cpus_allowed: '0,1'}"))
    w = scn.workloads[0]
    argv = fio_argv(w.name, "/dev/sda", scn.fio_options(w), *scn.fio_runtime(w))
    assert "--size=512M" in argv and "--norandommap=1" in argv and "--cpus_allowed=0,1" in argv


# ---- message hygiene for hostile keys ----------------------------------------------------------

def test_unknown_key_with_newline_stays_one_line():
    error_of(GOOD + '"bad\\nkey": 1\n')


def test_unknown_key_with_bracket_is_named():
    msg = error_of(GOOD + '"foo[1]": 1\n')
    assert "foo[1]" in msg


# ---- profiles ----------------------------------------------------------------------------------

def test_profile_merges_defaults_and_variant_device():
    scn = load_scenario_text(GOOD.replace("disk: {size_gib: 1}",
                                          "disk: {size_gib: 1, cache: none, io: threads}\n"
                                          "  rng: {model: none}\n  balloon: {model: virtio}"))
    p = scn.profile(scn.variants[1])
    assert isinstance(p, DeviceProfile)
    # The variant's disk over the defaults' disk: what it does not set comes from defaults ...
    assert p.disk == DiskSpec(bus="sata", size_gib=1, cache="none", io="threads")
    # ... and the other devices come from defaults, identical for every variant.
    assert p.rng.model == "none" and p.balloon.model == "virtio"
    assert scn.profile(scn.variants[0]).rng == p.rng
    assert p.nic is None
    assert p.model_of("disk") == "sata" and not p.is_paravirtual("disk")
    assert scn.profile(scn.variants[0]).is_paravirtual("disk")


def test_profile_defaults_rng_virtio_balloon_none():
    scn = load_scenario_text(GOOD)
    p = scn.profile(scn.variants[0])
    assert p.rng == RngSpec() and p.rng.model == "virtio"
    assert p.balloon.model == "none"
    assert p.model_of("nic") == "absent"


def test_profile_variant_without_device_uses_defaults():
    text = GOOD.replace("    disk: {bus: virtio}\n", "").replace("disk: {size_gib: 1}",
                                                                   "disk: {bus: ide}")
    scn = load_scenario_text(text)
    assert scn.profile(scn.variants[0]).disk.bus == "ide"
    assert scn.profile(scn.variants[1]).disk.bus == "sata"


def test_scsi_counts_as_paravirtual():
    assert DeviceProfile(disk=DiskSpec(bus="scsi")).is_paravirtual("disk")
    assert not DeviceProfile(disk=DiskSpec(bus="ide")).is_paravirtual("disk")


def test_parse_profile_virtio_preset():
    p = parse_profile("virtio")
    assert (p.disk.bus, p.nic.model, p.rng.model, p.balloon.model) == ("virtio",) * 4


def test_parse_profile_emulated_preset():
    p = parse_profile("emulated")
    assert (p.disk.bus, p.nic.model, p.rng.model, p.balloon.model) == ("sata", "e1000", "none", "none")


def test_parse_profile_items():
    p = parse_profile("disk=ide,nic=rtl8139,rng=none,balloon=virtio")
    assert (p.disk.bus, p.nic.model, p.rng.model, p.balloon.model) == ("ide", "rtl8139", "none",
                                                                       "virtio")


def test_parse_profile_partial_items_leave_others_default():
    p = parse_profile("nic=e1000e")
    assert p.nic.model == "e1000e" and p.disk is None
    assert p.rng.model == "virtio" and p.balloon.model == "none"


@pytest.mark.parametrize("text, needles", [
    ("bogus", ["'bogus'", "virtio, emulated", "disk=sata"]),
    ("disk", ["'disk'", "preset"]),
    ("gpu=virtio", ["'gpu=virtio'", "preset"]),
    ("disk=usb", ["disk.bus", "must be one of virtio, scsi, sata, ide, nvme", "'usb'"]),
    ("nic=ne2k_pci", ["nic.model", "virtio, e1000, e1000e, rtl8139", "'ne2k_pci'"]),
    ("rng=egd", ["rng.model", "virtio, none"]),
    ("balloon=xen", ["balloon.model", "virtio, none"]),
    ("disk=sata;nic=e1000", ["disk.bus", "(got 'sata;nic=e1000')"]),
    ("Virtio", ["'Virtio'"]),
])
def test_parse_profile_bad(text, needles):
    with pytest.raises(ScenarioError) as exc:
        parse_profile(text)
    msg = str(exc.value)
    assert_one_line(msg)
    assert msg.startswith(f"profile {text!r}")
    for n in needles:
        assert n in msg, f"{n!r} missing from {msg!r}"


def test_reference_must_name_a_variant():
    assert load_scenario_text(GOOD + "reference: sata\n").reference == "sata"
    msg = error_of(GOOD + "reference: nvme\n")
    assert "reference" in msg and "nvme" in msg and "vblk" in msg


def test_variant_device_fields_it_does_not_set_come_from_defaults():
    s = load_scenario_text(GOOD.replace("disk: {size_gib: 1}",
                                        "disk: {size_gib: 8, cache: writeback, io: threads}"))
    for v in s.variants:
        disk = s.profile(v).disk
        assert (disk.size_gib, disk.cache, disk.io) == (8, "writeback", "threads")
    assert [s.profile(v).disk.bus for v in s.variants] == ["virtio", "sata"]
    # the variant's own field wins over the default
    s = load_scenario_text(GOOD.replace("disk: {bus: sata}", "disk: {bus: sata, size_gib: 3}"))
    assert [s.profile(v).disk.size_gib for v in s.variants] == [1, 3]


def test_defaults_that_do_not_fit_a_variant_are_one_line_with_its_path():
    msg = error_of(GOOD.replace("disk: {size_gib: 1}", "disk: {size_gib: 1, queues: 2}"))
    assert "variants[1].disk" in msg and "queues" in msg
