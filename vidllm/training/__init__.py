"""Training: stage-1 distillation losses, optimisers and schedules, the Lightning module and CLI."""
