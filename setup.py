"""vidllm: monocular video → metric 3D reconstruction + 3D vision–language reasoning (Vid-LLM)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="vidllm",
    version="0.1.0",
    description="Vid-LLM: a video-based 3D multimodal LLM with a Cross-Task Adapter, metric reconstruction and 3D grounding",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vidllm", "vidllm.*", "cta", "cta.*", "recon", "recon.*", "vl", "vl.*"]),
    package_data={"vidllm": ["resources/*"]},
    install_requires=[
        "torch>=2.4,<2.14",
        "transformers>=4.48,<6",
        "tokenizers>=0.20",
        "peft>=0.13",
        "lightning>=2.4,<3",
        "jsonargparse[signatures]>=4.32",
        "omegaconf>=2.3",
        "scipy>=1.11",
        "open3d>=0.18",
        "safetensors>=0.4",
        "numpy>=1.26",
        "pillow>=10",
        "imageio>=2.34",
        "imageio-ffmpeg>=0.5",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "tensorboard>=2.15",
    ],
    extras_require={
        "gpu": ["xformers>=0.0.28"],
        "eval": ["pycocoevalcap>=1.2"],
        "dev": ["pytest>=8", "ruff>=0.6"],
    },
    entry_points={"console_scripts": ["vidllm=vidllm.cli:main"]},
)
