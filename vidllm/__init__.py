"""vidllm: a plain monocular video → metric point cloud, camera poses, answers, captions and 3D boxes.

Implements Vid-LLM: a shared DINOv2 encoder, a Cross-Task Adapter with bridge tokens, a
VGGT-compatible reconstruction branch with a metric depth model and real-scale alignment, and a
3D vision–language branch feeding 3D patch tokens to an LLM.
"""

from vidllm.config import VidLLMConfig, load_config, save_config
from vidllm.errors import CheckpointError, ConfigError, DataError, VidLLMError

__version__ = "0.1.0"

__all__ = [
    "VidLLM",
    "VidLLMPipeline",
    "Reconstruction",
    "Answer",
    "Grounding",
    "VidLLMConfig",
    "load_config",
    "save_config",
    "VidLLMError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "__version__",
]


def __getattr__(name: str):
    """``vidllm.VidLLM`` (the model), ``vidllm.VidLLMPipeline`` (the Python API around it) and the API's
    result types are imported on first use, so ``import vidllm`` and ``vidllm --help`` stay fast."""
    if name == "VidLLM":
        from vidllm.model import VidLLM

        return VidLLM
    if name == "VidLLMPipeline":
        from vidllm.api import VidLLMPipeline

        return VidLLMPipeline
    if name in ("Reconstruction", "Answer", "Grounding"):
        from vidllm import results

        return getattr(results, name)
    raise AttributeError(f"module 'vidllm' has no attribute {name!r}")
