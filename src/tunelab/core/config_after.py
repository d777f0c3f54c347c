"""The run config's parts about what happens after the cells: the prices of the cost
table and the export of the best arm. Re-exported by core.config (RunConfig holds them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tunelab import TunelabError


@dataclass
class CostConfig:
    """Prices for the report's cost table (all optional; units in the names). Without them
    the table gives tokens and seconds only: no dollars are made up. Not part of any cell's
    key: adding or changing prices reuses every finished cell."""

    gpu_usd_per_hour: float | None = None
    """Price of the GPU machine an arm ran on (used where the run recorded a GPU)."""
    cpu_usd_per_hour: float | None = None
    """Price of the CPU machine an arm ran on (used where the run recorded the CPU)."""
    api_input_usd_per_mtok: float | None = None
    """openai backend: dollars per million prompt tokens (a model's own price_prompt wins)."""
    api_output_usd_per_mtok: float | None = None
    """openai backend: dollars per million generated tokens (a model's own price_completion wins)."""
    requests_per_day: float | None = None
    """Expected volume: the report turns break-even volumes into days and costs into $/day."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None and not (0 <= v < float("inf")):  # NaN fails this too
                raise TunelabError(f"{f.name}: must be a number >= 0, got {v}")


SHIP_FORMATS = ("adapter", "merged", "gguf-f32", "gguf-f16", "gguf-q8_0")


@dataclass
class ExportConfig:
    verify: list[str] = field(default_factory=list)
    """After the grid: export the best fine-tuned arm in these formats (adapter, merged,
    gguf-f32, gguf-f16, gguf-q8_0), re-score each on the test slice; the report shows them
    "as shipped" beside "as trained"."""

    def __post_init__(self):
        for f in self.verify:
            if f not in SHIP_FORMATS:
                raise TunelabError(f"verify: unknown format '{f}'. Available: {', '.join(SHIP_FORMATS)}")
