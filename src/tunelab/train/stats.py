"""What a training run reports: steps, tokens and seconds it cost, its loss and
validation curves, why it stopped and whether it converged, the precision it ran in.
train_loop fills it; methods store it with the cell, the report reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainStats:
    steps: int = 0
    tokens: int = 0
    """Real (non-padding) tokens processed."""
    supervised_tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    truncated: int = 0
    trainable_params: int = 0
    processes: int = 1
    """Data-parallel processes that trained (accelerate launch / torchrun)."""
    parallel: str = "none"
    """How they shared the model: none, ddp (replicated) or fsdp (sharded)."""
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    """Validation loss (completion tokens) at val_steps; step 0 is before training."""
    best_step: int | None = None
    """epochs auto: the step whose weights were kept (the lowest validation loss)."""
    stop_reason: str = "epochs"
    """early_stop (patience), budget (max_epochs/max_steps/max_seconds), epochs (the fixed
    epochs), or no_validation (epochs auto without validation examples: one epoch)."""
    converged: bool | None = None
    """False when the validation loss was still falling at the budget's end, or barely
    moved; None when not measured."""
    convergence_note: str | None = None
    precision: str = "fp32"
    """What the steps ran in (train.precision resolved on this machine: fp32 or bf16)."""
    precision_reason: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0
