"""The host side: the lab, libvirt plumbing, networks, the accelerator, other hosts, images."""
