"""Typed settings of the demo run; the model itself comes from ``configs/demo.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DemoSettings:
    """What the demo runs and how long each training part may take (at ``minutes`` = the default)."""

    out: str = "outputs/demo"
    """Output directory (data, teachers, stage runs, evaluation, report)."""
    config: str | None = None
    """Model config YAML (default: the packaged configs/demo.yaml)."""
    scenes: int | None = None
    """Synthetic scenes to generate (default: the config's data.synthetic_scenes); 20 % are held out."""
    minutes: float = 12.0
    """Training budget in minutes (teachers + stage 1 + stage 2); step counts scale with it."""
    seed: int = 0
    """Seed of the data, the teachers and both stages."""
    stage1_steps: int = 300
    """Stage-1 steps at the default budget."""
    stage2_steps: int = 1100
    """Stage-2 steps at the default budget."""
    teacher_minutes: float = 4.0
    """Minutes of the two teachers together at the default budget (the geometry teacher gets 60 %)."""
    teacher_steps: int = 800
    """Most steps of each teacher at the default budget."""
    semantic_dense_weight: float = 0.0
    """Weight of the semantic teacher's dense patch–name term (``TeacherTrainConfig.semantic_dense_weight``; 0 = frame-level
    CLIP only). Measured at 1.0 with seed 0: colour EM 0.100 vs 0.171 without (docs/architecture.md), so the default is off."""
    total_minutes: float = 19.5
    """Wall-clock ceiling of the whole run at the default budget (scaled like the steps): stage 2 stops
    early (Lightning ``max_time``) when its steps would pass it, keeping ``reserve_seconds`` for the rest."""
    reserve_seconds: float = 160.0
    """Seconds kept from stage 2's ceiling for what ``max_time`` does not count — the fit's start-up and model
    saving (≈ 55 s) — and for evaluation of the trained and untrained model, export and the report (≈ 90 s)."""
    eval_limit: int | None = None
    """Evaluate at most this many queries / scenes per task (None = the whole held-out split)."""
    resume: bool = False
    """Reuse the finished steps of an earlier run in ``out`` (data, teachers, stage runs, evaluation files)."""
    questions: list[str] = field(default_factory=list)
    """Questions for the API step (default: three held-out ScanQA questions of the exported scene)."""

    DEFAULT_MINUTES = 12.0

    @property
    def scale(self) -> float:
        """Budget factor applied to the step counts and teacher minutes."""
        return max(self.minutes, 0.05) / self.DEFAULT_MINUTES

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError(f"--minutes must be > 0, got {self.minutes}")
        if self.scenes is not None and self.scenes < 3:
            raise ValueError(f"--scenes must be >= 3 (train and held-out scenes), got {self.scenes}")
