"""A torchvision whose compiled ops do not match the installed torch (PyPI's torchvision wheels are CUDA
builds; CPU machines run the CPU torch wheel) fails at import while registering meta kernels for its ops
("operator torchvision::nms does not exist"), and transformers then cannot import any model, BertModel
included. Transformers uses only torchvision's transforms, which need none of those kernels: when the
import fails for exactly that reason, it is retried without them. A matching torchvision (GPU machines)
imports as it is."""

from __future__ import annotations

import importlib.util
import logging
import sys
import types

log = logging.getLogger("unitok")


def import_torchvision_safely() -> None:
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision  # noqa: F401

        log.debug("torchvision's compiled ops do not match this torch; imported without their meta kernels")
