"""Probes: build the command lines of the benchmark tools and turn their output into samples.

Each module owns one tool (fio, iperf3, ping) or one guest fact-finding job (entropy, balloon).
Command builders return argv lists; parsers are pure (text in, ``list[Sample]`` out) and raise
only :class:`vbench.core.errors.ProbeError` on bad or error output.
"""
