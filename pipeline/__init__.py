"""unitok pipeline: config, planning, per-modality splitters, assembly, drivers and the CLI."""

__version__ = "0.1.0"
PIPELINE_VERSION = f"unitok/{__version__}"
