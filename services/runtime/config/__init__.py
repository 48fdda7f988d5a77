"""What a bus process is configured by: the `KETENBUS_*` settings and the agency registry file."""
