"""A host-side peer of a network workload (iperf3 -s) in the lab's namespace, started and stopped
by vbench and recorded while it runs so that ``vbench lab gc`` can stop it after a SIGKILL. (The
local hosts' ``peer`` of :mod:`vbench.host.hosts`; another host's is ``remote.RemotePeer``.)"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import IO

from vbench.core import procs
from vbench.core.errors import ProbeError


class HostPeer:
    """A host-side server (iperf3 -s) inside the lab namespace, started and stopped by vbench.

    Its pid and start time are recorded under the lab directory while it runs, so that
    ``vbench lab gc`` can stop it after a SIGKILL of vbench without looking for it by name.
    Readiness is seen by polling the namespace's listening sockets (``ss``): the server's own
    output is block-buffered in a pipe and cannot be waited for line by line.
    """

    def __init__(self, ns: str | None, argv: list[str], port: int) -> None:
        self.ns = ns
        self.argv = netns_argv(ns, argv)
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.record: Path | None = None
        self.log: IO[str] | None = None

    def __enter__(self) -> "HostPeer":
        import json
        import tempfile

        from vbench.core import paths
        from vbench.core.files import atomic_write

        self.log = tempfile.TemporaryFile(mode="w+")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            ref = procs.ref(self.proc.pid, "host-peer")
            if ref is not None:
                self.record = paths.lab_dir() / "peers" / f"{self.proc.pid}.json"
                atomic_write(self.record, json.dumps(ref.to_dict()))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                ss = procs.run(netns_argv(self.ns, ["ss", "-Hltn", f"sport = :{self.port}"]),
                               timeout=5, check=False)
                if ss.ok and ss.stdout.strip():
                    return self
                time.sleep(0.1)
        except BaseException:  # Ctrl-C while starting: __exit__ would not run
            self.__exit__()
            raise
        said = self.output()
        self.__exit__()
        raise ProbeError(f"host-side peer did not start listening on port {self.port}: "
                         f"{' '.join(self.argv)} -- {said or 'no output'}")

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return " | ".join(self.log.read().strip().splitlines()[-3:])

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except Exception:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None
        if self.record is not None:
            self.record.unlink(missing_ok=True)
            self.record = None
        if self.log is not None:
            self.log.close()
            self.log = None


def netns_argv(ns: str | None, argv: list[str]) -> list[str]:
    from vbench.host.netns import exec_argv

    return exec_argv(ns, argv)
