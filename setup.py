"""vidllm: monocular video → metric 3D reconstruction + 3D vision–language reasoning (Vid-LLM)."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildPyWithConfigs(build_py):
    """Also copy the shipped configs (``configs/**/*.yaml``) into the package as ``vidllm/resources/configs``,
    where :func:`vidllm.shipped.config_dir` finds them in an installed (non-editable) package."""

    def run(self):
        super().run()
        source = HERE / "configs"
        if not source.is_dir():
            raise FileNotFoundError(f"cannot build vidllm: the shipped configs folder {source} is missing")
        target = Path(self.build_lib) / "vidllm" / "resources" / "configs"
        for path in sorted(source.rglob("*.yaml")):
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(path), str(dest))


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
    cmdclass={"build_py": BuildPyWithConfigs},
    install_requires=[
        "torch>=2.4,<2.14",
        "transformers>=4.48,<6",
        "tokenizers>=0.20",
        "peft>=0.13",
        "lightning>=2.4,<3",
        "jsonargparse[signatures]>=4.32",
        "omegaconf>=2.4",  # typing.Literal fields in structured configs
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
