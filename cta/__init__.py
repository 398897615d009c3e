"""Cross-Task Adapter (Vid-LLM §3.1) and the fusion variants used as ablations and baselines."""
