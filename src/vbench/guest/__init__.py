"""One guest: its domain XML and lifecycle, SSH into it, driver verification, kernel options."""
