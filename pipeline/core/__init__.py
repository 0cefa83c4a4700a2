"""The data model: records with provenance, table schemas, the job config, the worker contract."""
