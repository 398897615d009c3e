"""Tiny stage-1 teachers trained on the synthetic scenes: a VGGT-style geometry teacher and a CLIP-style
semantic teacher, saved in the formats real teachers come in (``vidllm teachers``)."""
