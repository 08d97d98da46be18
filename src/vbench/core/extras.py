"""The optional dependencies: ``pip install vbench`` is enough to validate and plan scenarios and
to read results (report, compare, history, publish, fleet compare/report, schema); booting guests
needs the lab extras, ``pip install 'vbench[lab]'`` (libvirt-python, which compiles against the
libvirt headers, and paramiko/cryptography for SSH). A command that needs them says so in one line.
"""

from __future__ import annotations

import importlib

from vbench.core.errors import LabError

INSTALL = "pip install 'vbench[lab]'"
LAB_MODULES = {"libvirt": "libvirt-python", "paramiko": "paramiko", "cryptography": "cryptography"}


def missing_lab_modules() -> list[str]:
    """The lab extras' distributions that cannot be imported here."""
    out = []
    for module, dist in LAB_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            out.append(dist)
    return out


def message(command: str, missing: list[str]) -> str:
    return (f"{command} needs the lab extras ({', '.join(missing)} not installed): {INSTALL} "
            f"(libvirt-python builds against libvirt's headers: apt install libvirt-dev gcc "
            f"python3-dev, or run scripts/setup.sh as root)")


def require_lab(command: str) -> None:
    """LabError (one line, exit 4) when the lab extras are not installed."""
    missing = missing_lab_modules()
    if missing:
        raise LabError(message(command, missing))


def lab_error_of(exc: ModuleNotFoundError, command: str) -> LabError | None:
    """A ModuleNotFoundError of a lab module as the one-line LabError; None for anything else."""
    root = (exc.name or "").split(".")[0]
    if root in LAB_MODULES:
        return LabError(message(command, [LAB_MODULES[root]]))
    return None
