"""The version recorded in every output row's provenance."""

__version__ = "0.1.0"
PIPELINE_VERSION = f"unitok/{__version__}"
