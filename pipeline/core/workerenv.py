"""The worker environment contract: every process that runs engines pins its native thread pools first.

Numeric results must not depend on the driver or the core count. OpenBLAS (numpy, hence faster-whisper's
mel features), MKL, OpenMP (Tesseract, torch), CTranslate2 and torch's intra-op pool all split reductions
by thread count, and a different split changes the last bits of a float and so, now and then, a word.
Parallelism comes from replicas (Ray actors, pool workers, Serve replicas), one engine thread each.

The environment variables reach libraries loaded after the call (and processes started from it);
threadpoolctl resets the pools of libraries already loaded (a forked worker inherits its parent's).
"""

from __future__ import annotations

import os
import sys

THREADS = 1
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OMP_THREAD_LIMIT",  # Tesseract's OpenMP
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "CT2_INTER_THREADS",  # CTranslate2 (faster-whisper also passes cpu_threads=1)
)


def worker_env_vars(threads: int = THREADS) -> dict[str, str]:
    """The variables a worker process must start with (a Ray runtime_env, a subprocess)."""
    return {name: str(threads) for name in THREAD_VARS}


def pin_native_threads(threads: int = THREADS) -> None:
    """Pin every native thread pool of this process to `threads`, whatever the caller's environment said
    (a user's OPENBLAS_NUM_THREADS=8 must not change the output). Idempotent; call it before an engine
    loads and again in a process that may have loaded numeric libraries since."""
    os.environ.update(worker_env_vars(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
