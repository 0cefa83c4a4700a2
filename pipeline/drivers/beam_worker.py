"""Entry of the DirectRunner's worker processes: Beam's SDK harness, started without the lines Beam logs
on every worker start about things this job does not use (cloud clients, a session file)."""

from __future__ import annotations

import logging
import sys

from unitok.pipeline.drivers.beam import QuietBeam, _quiet_beam_import

if __name__ == "__main__":
    with _quiet_beam_import():
        from apache_beam.runners.worker import sdk_worker_main
    logging.getLogger(sdk_worker_main.__name__).addFilter(QuietBeam())
    sdk_worker_main.main(sys.argv)
