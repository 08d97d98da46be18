"""The error classes vbench raises on purpose.

Every error a user can cause or fix derives from :class:`UserError`. The CLI catches that base class
once, prints its message as one line and exits with the class's ``exit_status``; anything else is a
bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vbench.core.metrics import CommandResult


class ExitStatus(IntEnum):
    """Every exit status of ``vbench`` (httpie's ``status.py``): the README lists the same."""

    SUCCESS = 0
    REGRESSION = 1            # `compare` found a significant regression beyond its threshold
    USER_ERROR = 2            # usage or another user error
    SCENARIO_INVALID = 3
    LAB_NOT_READY = 4
    IMAGE_PROBLEM = 5
    GUEST_FAILED = 6          # boot, lease, SSH, crash
    DRIVER_MISMATCH = 7       # a driver other than the intended one is bound
    COMMAND_FAILED = 8        # a command in a guest or on the host failed or timed out
    PROBE_OUTPUT = 9          # tool output could not be turned into samples
    STORE = 10                # results cannot be written or read
    UNITS_FAILED = 11         # the run finished but some units failed (recorded in run.json)
    KERNEL_OPTIONS = 12       # the guest kernel lacks options a scenario needs
    INTERNAL_ERROR = 70       # a bug in vbench (EX_SOFTWARE); --debug shows the traceback
    INTERRUPTED = 130         # Ctrl-C / SIGTERM: guests destroyed, results so far kept


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and what to do next.

    ``problems``: every problem found, one line each (the CLI prints one line per problem; the
    message joins them with "; ")."""

    exit_status: ExitStatus = ExitStatus.USER_ERROR
    # True: no variant can be measured (see ImageUnfit), the run stops rather than failing
    # variant by variant
    stops_run: bool = False

    def __init__(self, message: str = "", problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]

    @classmethod
    def of(cls, problems: list[str]):
        return cls("; ".join(problems), problems)


class ScenarioError(UserError):
    """A scenario file is unreadable or invalid; the message names the field path."""

    exit_status = ExitStatus.SCENARIO_INVALID


class HostsFileError(ScenarioError):
    """A hosts file is unreadable or invalid: bad input, exit 3 like a bad scenario."""


class LabError(UserError):
    """The host side (daemons, namespace, network, accelerator) is not ready."""

    exit_status = ExitStatus.LAB_NOT_READY


class BadUri(LabError):
    """A libvirt URI outside the allow-list (:func:`vbench.host.uris.check_uri`): bad input."""

    exit_status = ExitStatus.SCENARIO_INVALID


class ImageError(UserError):
    """A guest image is missing, broken or cannot be built."""

    exit_status = ExitStatus.IMAGE_PROBLEM


class ImageUnfit(ImageError):
    """The guest image cannot run this scenario at all (a tool or a kernel option it needs is
    missing): every variant would fail the same way, so the run stops."""

    stops_run = True


class GuestError(UserError):
    """A guest failed to boot, to answer, or died; carries the console tail when known."""

    exit_status = ExitStatus.GUEST_FAILED

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(message)
        self.console_tail = console_tail


class BootError(GuestError):
    """A guest did not come up (no lease, no SSH, died or hung while booting). ``stage`` says how
    far its boot got (one of ``vbench.host.bootlog.STAGES``); a run retries such a boot with a fresh
    overlay (``guest.boot_retries``) before it gives the variant up."""

    def __init__(self, message: str, console_tail: str = "", stage: str = "") -> None:
        super().__init__(message, console_tail)
        self.stage = stage

    def after_attempts(self, total: int, earlier: list[str]) -> "BootError":
        """This, the last of ``total`` failed boots, carrying each earlier attempt's reason
        (``earlier``: "attempt N: <reason>" each), with this one's console tail and stage."""
        return BootError(f"{self} (boot attempt {total} of {total}; {'; '.join(earlier)})",
                         self.console_tail, self.stage)


class DeviceMismatch(GuestError):
    """The driver bound in the guest is not the one the device profile asked for."""

    exit_status = ExitStatus.DRIVER_MISMATCH


class RemoteCommandError(UserError):
    """A command inside a guest (or on the host) exited non-zero or timed out (invoke's
    ``UnexpectedExit``); carries the :class:`~vbench.core.metrics.CommandResult`."""

    exit_status = ExitStatus.COMMAND_FAILED

    def __init__(self, result: CommandResult, message: str | None = None) -> None:
        self.result = result
        super().__init__(message or _describe(result))


class CommandTimedOut(RemoteCommandError):
    """A command did not finish within its timeout and was abandoned or killed (invoke's
    ``CommandTimedOut``): a hang, not a failure exit."""


class ProbeError(UserError):
    """A benchmark tool's output could not be turned into samples (bad or error output)."""

    exit_status = ExitStatus.PROBE_OUTPUT


class StoreError(UserError):
    """The results store cannot be written or a stored file is unreadable/foreign."""

    exit_status = ExitStatus.STORE


class RegressionFound(UserError):
    """`vbench compare` found a significant regression beyond its threshold."""

    exit_status = ExitStatus.REGRESSION


def _describe(result: CommandResult) -> str:
    cmd = getattr(result, "command", "?")
    status = getattr(result, "exit_status", "?")
    tail = getattr(result, "tail", lambda: "")()
    if getattr(result, "timed_out", False):
        text = f"command timed out after {getattr(result, 'duration', 0):.0f} s: {cmd}"
    else:
        text = f"command failed (exit {status}): {cmd}"
    if tail:
        text += f" -- last output: {tail}"
    return text
