"""Object storage in (listing, reading) and Parquet out (staged, committed runs)."""
