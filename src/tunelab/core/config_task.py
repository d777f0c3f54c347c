"""The task part of the run config: which task, its data files and splits, how it is
scored and the instruction its prompts carry. Re-exported by core.config (RunConfig holds it)."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab import TunelabError

SCORINGS = ("auto", "classification", "text")


@dataclass
class TaskConfig:
    name: str = "viggo"
    """Task name (see `tunelab tasks`)."""
    data_dir: str | None = None
    """Folder with the task's files; default: $TUNELAB_DATA_DIR/<task's folder> if it exists, else
    the copy shipped with tunelab, else the public dataset (fetched through `datasets`)."""
    train: str | None = None
    """Training file (jsonl task): path, absolute or relative to data_dir."""
    validation: str | None = None
    """Validation file (optional; else split off train with split_seed)."""
    test: str | None = None
    """Test file (optional; else split off train with split_seed)."""
    format: str = "auto"
    """Record format for the jsonl task: auto (per record), prompt_completion, alpaca,
    messages, sharegpt, label (text/label)."""
    scoring: str = "auto"
    """jsonl task: auto (classification if the completions look like labels: 2 to 50
    distinct values, each at most 5 words and seen at least twice; else free text),
    classification (accuracy, macro-F1, label set in the instruction) or text (exact
    match, token F1)."""
    metric: str | None = None
    """Primary metric override (a name from metrics.METRICS)."""
    instruction: str | None = None
    """Override the task's instruction (system prompt)."""
    n_test: int = 100
    """Evaluate on a fixed, seeded slice of this many test examples (0 = all)."""
    split_seed: int = 0
    """Seed for made splits and for the fixed test slice."""
    split_fraction: float = 0.1
    """Fraction of examples for each made split (validation, test) when files give none."""
    corpus: str | None = None
    """Documents for retrieval (rag): a folder of .txt/.md files or a JSONL of passages
    with fields id and text; path absolute or relative to data_dir."""

    def __post_init__(self):
        if self.scoring not in SCORINGS:
            raise TunelabError(f"scoring: unknown '{self.scoring}'. Available: {', '.join(SCORINGS)}")
