"""Vision–language branch: 3D patch lifting, token pooling, LLM wrapper, prompts, grounding, VL losses."""
