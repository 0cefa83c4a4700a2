"""TEST SHIM, loaded only because the test setup puts this folder on PYTHONPATH.

PyPI's torchvision is a CUDA build; against the CPU torch wheel used on CPU-only test machines its import
fails ("operator torchvision::nms does not exist") while registering meta kernels. Transformers' image
processors need only torchvision's transforms, so an empty `torchvision._meta_registrations` lets the
import go through. Never used outside the tests; GPU machines have a matching torchvision.
"""

import sys
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
