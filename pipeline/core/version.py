"""The version recorded in every output row's provenance."""

__version__ = "0.1.0"
PIPELINE_VERSION = f"unitok/{__version__}"

# The chunker's own version: a change to where chunks are cut (pipeline/stages/cuts.py) bumps it, and a
# scheduled job then re-chunks the stored documents without converting them again (core.fingerprint).
CHUNKER_VERSION = "cuts-1"
