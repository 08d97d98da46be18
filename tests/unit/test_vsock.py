"""The vsock device's live operation: the socket transport it gives a running guest, to the CID
libvirt chose when the guest started (read from the live domain XML, never guessed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from vbench.core.errors import GuestError
from vbench.devices.base import GuestSocket
from vbench.devices.vsock import guest_cid
from vbench.run.executors import LiveGuest
from vbench.scenario.schema import parse_profile

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _live_xml(cid: str = "3") -> str:
    """The golden domain XML as libvirt reports it running: the CID it chose, filled in."""
    xml = (GOLDEN / "domain-vsock-virtio-kvm.xml").read_text()
    assert "<cid auto='yes'/>" in xml
    return xml.replace("<cid auto='yes'/>", f"<cid auto='yes' address='{cid}'/>")


def test_guest_cid_comes_from_the_live_domain_xml():
    assert guest_cid(_live_xml("3")) == 3 and guest_cid(_live_xml("4294967294")) == 4294967294


@pytest.mark.parametrize("xml", [
    (GOLDEN / "domain-vsock-virtio-kvm.xml").read_text(),  # inactive: no address yet
    _live_xml("2"), _live_xml("4294967295"), _live_xml("3x"), _live_xml(""),
    (GOLDEN / "domain-rng-none-kvm.xml").read_text(), "<domain",
])
def test_no_usable_cid_is_an_error_never_a_guess(xml):
    with pytest.raises(GuestError, match="vsock"):
        guest_cid(xml)


def test_live_guest_gives_a_vsock_socket_only_with_a_virtio_vsock():
    g = SimpleNamespace(name="g", live_xml=lambda: _live_xml("7"),
                        profile=parse_profile("vsock=virtio"))
    assert LiveGuest(g).guest_socket() == GuestSocket("vsock", "7")  # type: ignore[arg-type]
    g.profile = parse_profile("vsock=none")
    assert LiveGuest(g).guest_socket() is None  # type: ignore[arg-type]
