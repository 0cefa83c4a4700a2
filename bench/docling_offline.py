"""What docling needs to start on this machine's CPU torch, offline: for the benchmarks that run it."""

# Run in docling's venv before docling is imported. torchvision's only Linux wheels on PyPI are CUDA
# builds; on the CPU build of torch their operator library does not load, which torchvision means to
# survive, but two of its fake-kernel registrations (nms, qnms) are not guarded and raise at `import
# torchvision`, which docling's table-structure plugin does at start-up. Declaring those two schemas lets
# the import finish; no torchvision operator runs for the formats converted here.
TORCHVISION_PREAMBLE = """
import importlib.util, os, sys, torch
spec = importlib.util.find_spec("torchvision")
if spec is not None:
    try:
        torch.ops.load_library(os.path.join(os.path.dirname(spec.origin), "_C.so"))
    except OSError:
        for op in ("nms", "qnms"):
            torch.library.define(
                f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
"""
