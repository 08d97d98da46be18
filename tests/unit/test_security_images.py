"""Issue 10, finding 2 and 7: guest.image is a name inside guests/, recipe fields are
allow-listed, a recipe cannot take or prune another recipe's images, base.qcow2 (which holds the
guest's private host key) is not world-readable, and cleanup does not trust libvirt metadata."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vbench.host import images
from vbench.core import paths
from vbench.host import libvirtd
from vbench.core.errors import ImageError, ScenarioError
from vbench.scenario.schema import load_scenario_text

GOOD = """name: {name}
suite: bookworm
variant: minbase
packages: [systemd-sysv, openssh-server, linux-image-amd64, g++]
mask: [apt-daily.timer, getty@tty1.service]
"""


@pytest.fixture
def guests(tmp_path, monkeypatch):
    d = tmp_path / "guests"
    d.mkdir()
    monkeypatch.setenv("VBENCH_GUESTS", str(d))
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    (d / "good.yaml").write_text(GOOD.format(name="good"))
    return d


def test_a_good_recipe_loads(guests):
    recipe, key = images.load_recipe("good")
    assert recipe.name == "good" and len(key) == 12


@pytest.mark.parametrize("name", ["../x", "{tmp}/x.yaml", "{tmp}/x", "good.yaml", "..", "",
                                  "a/b", "X"])
def test_image_must_be_a_name(guests, tmp_path, name):
    """The recipe file outside guests/ exists: only the name rule keeps it out."""
    (tmp_path / "x.yaml").write_text(GOOD.format(name="x"))
    with pytest.raises(ImageError, match="not a recipe name"):
        images.load_recipe(name.format(tmp=tmp_path))


@pytest.mark.parametrize("image", ["../../x", "/tmp/x.yaml", "x.yaml", "a/b"])
def test_scenario_guest_image_is_a_name(image):
    text = ("name: s\ndevice: disk\nguest: {image: '" + image + "'}\nvariants:\n"
            "  - {name: a, disk: {bus: virtio}}\nworkloads:\n  - {name: w, fio: {rw: read}}\n")
    with pytest.raises(ScenarioError, match="guest.image"):
        load_scenario_text(text)


@pytest.mark.parametrize("field, value", [
    ("packages", "[/tmp/evil.deb]"),
    ("packages", "['./evil.deb']"),
    ("packages", "['openssh-server=1:9.2']"),
    ("packages", "['?name(.*)']"),
    ("packages", "['--hook-dir=/tmp']"),
    ("packages", "['a,b']"),
    ("mask", "['../../etc/passwd']"),
    ("mask", "['sshd; reboot']"),
    ("mask", "['--root=/']"),
    ("initramfs_modules", "['../../lib/x.ko']"),
    ("initramfs_modules", "['ext4\\nMODULES=most']"),
    ("blacklist_modules", "['floppy; install floppy /bin/sh']"),
    ("blacklist_modules", "['-r']"),
    ("blacklist_modules", "[Floppy]"),
    ("variant", "extract"),
    ("variant", "custom"),
    ("suite", "'bookworm --hook'"),
])
def test_recipe_fields_are_allow_listed(guests, field, value):
    text = GOOD.format(name="bad")
    lines = [ln for ln in text.splitlines() if not ln.startswith(field + ":")]
    (guests / "bad.yaml").write_text("\n".join(lines) + f"\n{field}: {value}\n")
    with pytest.raises(ImageError) as exc:
        images.load_recipe("bad")
    assert "\n" not in str(exc.value) and field in str(exc.value)


def test_a_recipe_cannot_take_another_recipes_name(guests):
    (guests / "mine.yaml").write_text(GOOD.format(name="debian12"))
    with pytest.raises(ImageError, match="file name"):
        images.load_recipe("mine")


def test_symlinked_recipe_refused(guests, tmp_path):
    (tmp_path / "evil.yaml").write_text(GOOD.format(name="evil"))
    (guests / "evil.yaml").symlink_to(tmp_path / "evil.yaml")
    with pytest.raises(ImageError):
        images.load_recipe("evil")


def test_alias_bomb_recipe_refused(guests):
    (guests / "bomb.yaml").write_text("name: bomb\na: &a [x, x]\nb: [*a, *a]\n")
    with pytest.raises(ImageError, match="aliases"):
        images.load_recipe("bomb")


def test_prune_removes_only_builds_of_exactly_this_recipe(guests, tmp_path):
    imgs = paths.images_dir()
    for n in ("debian12-0123456789ab", "debian12-ba9876543210", "debian12-x-0123456789ab",
              "debian12-notahash"):
        (imgs / n).mkdir(parents=True)
    images._prune_superseded("debian12", keep=imgs / "debian12-ba9876543210", progress=lambda m: None)
    assert sorted(p.name for p in imgs.iterdir()) == [
        "debian12-ba9876543210", "debian12-notahash", "debian12-x-0123456789ab"]


def test_base_image_is_not_world_readable(tmp_path):
    base = tmp_path / "base.qcow2"
    base.write_bytes(b"QFI\xfb with a private host key inside")
    os.chmod(base, 0o644)
    images.restrict_base(base)
    mode = stat.S_IMODE(base.stat().st_mode)
    assert mode & 0o007 == 0 and mode & 0o040


@pytest.mark.parametrize("tag", ["{gd}/..", "{gd}/../images", "/etc", "{gd}/vbench-x/../..",
                                 "{gd}/not-ours", "{gd}", "", None, "{gd}/vbench-x/sub"])
def test_cleanup_does_not_trust_the_dir_tag(tmp_path, monkeypatch, tag):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    gd = paths.guests_dir()
    gd.mkdir(parents=True)
    value = tag.format(gd=gd) if isinstance(tag, str) else tag
    assert libvirtd.owned_guest_dir(value) is None


def test_cleanup_accepts_its_own_guest_dir_but_not_a_link(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    gd = paths.guests_dir()
    (gd / "vbench-run-0-a").mkdir(parents=True)
    assert libvirtd.owned_guest_dir(str(gd / "vbench-run-0-a")) == gd / "vbench-run-0-a"
    (gd / "vbench-link").symlink_to(tmp_path)
    assert libvirtd.owned_guest_dir(str(gd / "vbench-link")) is None
