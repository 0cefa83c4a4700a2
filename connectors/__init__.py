"""Object stores in (listing, reading) and one output writer with one commit protocol (folders, S3)."""
