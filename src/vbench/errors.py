"""The error classes vbench raises on purpose.

Every error a user can cause or fix derives from :class:`UserError`. The CLI catches that base class
once, prints its message as one line and exits with the class's ``exit_status``; anything else is a
bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and what to do next."""

    exit_status = 2


class ScenarioError(UserError):
    """A scenario file is unreadable or invalid; the message names the field path."""

    exit_status = 3


class LabError(UserError):
    """The host side (daemons, namespace, network, accelerator) is not ready."""

    exit_status = 4


class ImageError(UserError):
    """A guest image is missing, broken or cannot be built."""

    exit_status = 5


class GuestError(UserError):
    """A guest failed to boot, to answer, or died; carries the console tail when known."""

    exit_status = 6

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(message)
        self.console_tail = console_tail


class DeviceMismatch(GuestError):
    """The driver bound in the guest is not the one the device profile asked for."""

    exit_status = 7


class RemoteCommandError(UserError):
    """A command inside a guest (or on the host) exited non-zero or timed out."""

    exit_status = 8

    def __init__(self, result: "object", message: str | None = None) -> None:
        self.result = result
        super().__init__(message or _describe(result))


class ProbeError(UserError):
    """A benchmark tool's output could not be turned into samples (bad or error output)."""

    exit_status = 9


class StoreError(UserError):
    """The results store cannot be written or a stored file is unreadable/foreign."""

    exit_status = 10


class RegressionFound(UserError):
    """`vbench compare` found a significant regression beyond its threshold."""

    exit_status = 1


def _describe(result: object) -> str:
    cmd = getattr(result, "command", "?")
    status = getattr(result, "exit_status", "?")
    tail = getattr(result, "tail", lambda: "")()
    text = f"command failed (exit {status}): {cmd}"
    if tail:
        text += f" -- last output: {tail}"
    return text
