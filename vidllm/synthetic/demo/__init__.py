"""``vidllm demo``: synthetic scenes → teachers → stage 1 → stage 2 → evaluation → export → report."""

from vidllm.synthetic.demo.settings import DemoSettings

__all__ = ["DemoSettings"]
