"""Many hosts: one scenario fanned out over a list of libvirt hosts, hosts side by side.

- :mod:`.hosts`: the hosts file (untrusted: allow-listed fields, bounded, safe names);
- :mod:`.identity`: which hosts share a machine (and so its CPUs);
- :mod:`.schedule`: hosts of one machine one after another, different machines in parallel;
- :mod:`.launch`: one real ``vbench run`` per host as a child process, signals forwarded;
- :mod:`.index`: the fleet directory and its ``fleet.json`` (written atomically);
- :mod:`.compare`: the paravirtual/emulated ratios of every host in columns.
"""
