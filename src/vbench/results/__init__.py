"""Results on disk (one directory per run, the typed run record) and in PostgreSQL."""
