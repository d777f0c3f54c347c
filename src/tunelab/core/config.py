"""Run configuration: YAML mapped onto typed dataclasses, saved with every result.

Unknown keys fail with one line naming the key and what is allowed, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from tunelab import TunelabError
from tunelab.core.config_after import SHIP_FORMATS, CostConfig, ExportConfig  # noqa: F401
from tunelab.core.config_task import SCORINGS, TaskConfig  # noqa: F401  (re-exported)
from tunelab.core.schema import field_docs, from_dict, to_dict  # noqa: F401  (their old home)


@dataclass
class ModelConfig:
    name: str = "smollm2-135m"
    """Packaged alias (smollm2-135m, gemma3-270m), a local path, or a Hugging Face hub id."""
    dtype: str = "float32"
    """Weights dtype. float32 on CPU: bf16 is hundreds of times slower on CPUs without bf16 units."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own Python code (off unless you trust the source)."""
    backend: str = "hf"
    """hf (weights loaded here) or openai (any OpenAI-compatible chat endpoint; prompting only)."""
    base_url: str | None = None
    """openai backend: the endpoint, e.g. https://api.openai.com/v1 or http://localhost:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai backend: name of the environment variable holding the key (the key is never stored)."""
    concurrency: int = 4
    """openai backend: requests in flight at once."""
    max_retries: int = 5
    """openai backend: retries with exponential backoff on rate limits, timeouts and 5xx."""
    timeout: float = 60.0
    """openai backend: seconds per request."""
    price_prompt: float = 0.0
    """openai backend: price per million prompt tokens (for the cost table)."""
    price_completion: float = 0.0
    """openai backend: price per million generated tokens."""
    device: str = "auto"
    """Where the weights run: auto (the first accelerator present: CUDA, then Apple MPS,
    else the CPU), cpu, cuda, cuda:N or mps. Each process of a torchrun / accelerate launch
    takes the CUDA device of its LOCAL_RANK. Where it runs, not what it computes: not in
    the cell key."""
    quantize: str = "none"
    """Load the frozen base weights in 8bit or 4bit (bitsandbytes, CUDA only; 4bit with
    LoRA is QLoRA) to fit a larger model on the card; none keeps the dtype above."""

    def __post_init__(self):
        if self.quantize not in QUANTIZE:
            raise TunelabError(f"quantize: unknown '{self.quantize}'. Available: {', '.join(QUANTIZE)}")


QUANTIZE = ("none", "8bit", "4bit")


MODEL_IDENTITY = ("name", "dtype", "trust_remote_code", "backend", "base_url", "quantize")
"""The model fields that decide which weights answer (the rest: retries, prices, speed,
device). quantize enters only when set (added later: at none, keys are as before). Cell
keys (run/keys.py) and distill's teacher cache hash these."""


def model_identity(model: ModelConfig) -> dict:
    return {k: v for k, v in to_dict(model).items()
            if k in MODEL_IDENTITY and not (k == "quantize" and v == "none")}


@dataclass
class TrainConfig:
    epochs: float | str = "auto"
    """Passes over the training subset, or "auto": train until the validation loss stops
    improving (`patience` evaluations), within the budget (max_epochs, max_steps,
    max_seconds), then restore the best checkpoint."""
    min_steps: int = 0
    """At least this many optimizer steps (more epochs for tiny training sets)."""
    max_epochs: float = 8.0
    """epochs auto: budget in passes over the training subset."""
    min_budget: int = 256
    """epochs auto: the budget is at least this many optimizer steps, so a small training
    set gets more passes (early stopping still ends it when the validation loss stops
    improving; max_steps and max_seconds still cap it): 8 passes over 100 examples at
    batch 8 are only 104 steps, too few for a small set's validation loss to settle.
    0: no floor (the budget is max_epochs alone)."""
    max_steps: int = 0
    """Budget in optimizer steps (0: none beyond the epochs)."""
    max_seconds: float = 0.0
    """Budget in seconds of training, validations included (0: none). Training ends at the
    last step that fits (stopping.out_of_seconds); its final validation may run past it."""
    eval_every: int = 0
    """Optimizer steps between validation-loss evaluations (0: about twice per epoch)."""
    patience: int = 3
    """epochs auto: evaluations without a new best validation loss before stopping."""
    val_size: int = 64
    """Validation examples scored for the validation loss (the same ones for every cell)."""
    lr: float | None = None
    """Peak learning rate (warm-up, then `schedule` decay over the budget). Default: the
    method's own (the lr on its spec): LoRA, full fine-tuning and soft prompts want rates
    600x apart, and one shared default under-trains some of them."""
    schedule: str = "cosine"
    """After warm-up: cosine (to 10% of the peak), linear (to 0) or constant."""
    plateau_drops: int = 0
    """epochs auto: at a plateau (`patience` evaluations without a new best), bring the best
    weights back and cut the lr by 0.3 (on top of the schedule), this many times, before
    early stopping ends the run; with drops, a new best resets patience only if it beats the
    one before by more than 1% (stopping.MIN_GAIN). A lr too hot for the schedule over the
    budget then settles instead of stopping at its first best, near the peak lr.
    0: stop at the first plateau."""
    batch_size: int = 8
    """Examples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; loss is normalised over the whole window."""
    max_length: int = 256
    """Longest tokenised example; longer ones are truncated (and counted)."""
    micro_tokens: int = 640
    """Padded tokens per micro-batch: a step's examples are cut, length-sorted, into pieces
    of at most this many (at least one example each), with the same gradient. Activations
    kept for backward grow with it; lower it where memory is short (bench/memory.py
    measures peak memory against it)."""
    warmup_ratio: float = 0.05
    """Fraction of the budget spent warming the learning rate up linearly from 0 to its peak."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    lora_r: int = 16
    """LoRA rank (lora, dpo, distill's student and sft stages)."""
    lora_alpha: int = 32
    """LoRA scaling numerator: the update is scaled by lora_alpha / lora_r."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch's input during training."""
    target_modules: str | list[str] = "all-linear"
    """LoRA target modules (peft syntax)."""
    save: bool = True
    """Save the adapter / weights with the run."""
    precision: str = "fp32"
    """Training precision: fp32, bf16 (autocast; fp32 master weights) or auto: bf16 where
    a start-up check finds a model-shaped block clearly faster on this machine and its
    loss equal to fp32's, else fp32 (precision.py). The choice is stored with the run.
    Default fp32: a faster block has not always meant a faster training loop, so auto is
    opt-in until the check predicts the whole loop (bench/precision.py compares them)."""
    fsdp: bool = False
    """Under a data-parallel launch (torchrun / accelerate launch), shard weights, gradients
    and optimizer state across the processes (torch FSDP2, one unit per decoder layer)
    instead of replicating them (DDP). No effect in a single process."""

    def __post_init__(self):
        if self.micro_tokens < 1:
            raise TunelabError(f"micro_tokens: must be at least 1, got {self.micro_tokens}")
        if isinstance(self.epochs, str) and self.epochs != "auto" or not isinstance(self.epochs, str) \
                and self.epochs < 0:
            raise TunelabError(f"epochs: must be a number >= 0 or 'auto', got {self.epochs!r}")
        if self.precision not in PRECISIONS:
            raise TunelabError(f"precision: unknown '{self.precision}'. Available: {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            raise TunelabError(f"schedule: unknown '{self.schedule}'. Available: {', '.join(SCHEDULES)}")
        for name in ("patience", "val_size", "eval_every", "max_steps", "min_budget", "plateau_drops"):
            if getattr(self, name) < 0:
                raise TunelabError(f"{name}: must be at least 0, got {getattr(self, name)}")


DEFAULT_LR = 1e-3
"""The lr of a method whose spec declares none (e.g. rag with an sft stage: a stage trains
at its kind's lr unless it sets one), and of a loop run outside a method without an lr
(tests, benches): the former LoRA default, kept where 2e-3 has not been measured."""

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class StageConfig:
    kind: str = "sft"
    """What this stage trains: a method that declares a stage kind on its spec: sft (lora,
    merged afterwards) or dpo (preference pairs)."""
    data: str | None = None
    """Training file for this stage (alpaca, prompt/completion or messages records), path
    absolute or relative to $TUNELAB_DATA_DIR; default: the cell's task examples."""
    n: int = 0
    """Examples drawn (seeded) from `data` (0 = all)."""
    train: dict = field(default_factory=dict)
    """Overrides of the method's train settings for this stage. Its lr: the one set here,
    else the config-wide `train.lr`, else its kind's own default (sft: LoRA's, dpo: DPO's;
    methods/stages.py `staged`), never the method's own default, which is tuned for another
    kind of training (DPO's 1e-4 is 20x under what an SFT stage of LoRA needs)."""
    label: str | None = None
    """Name of the stage in the report (default: kind and data)."""


@dataclass(init=False)
class MethodConfig:
    """One method entry: the keys every method takes. Its other keys are the method's own
    settings (its spec's dataclass, methods/<name>.py): `settings`."""

    OTHER_KEYS: ClassVar[str] = "settings"
    """from_dict puts an entry's keys not declared here into `settings` (schema.from_dict)."""

    name: str = "zero_shot"
    """Method name (see `tunelab methods`)."""
    train_sizes: list[int] = field(default_factory=lambda: [0])
    """Training-set sizes; one cell per size. Prompting methods use the pool for shots.
    For a method that trains, 0 (the default) is the whole training split."""
    label: str | None = None
    """Display name in the report (default: the method name)."""
    train: dict = field(default_factory=dict)
    """Overrides of the top-level train settings for this method."""
    models: list[str] = field(default_factory=list)
    """Run this method only on these models of the grid (by name; default: all)."""
    stages: list[StageConfig] = field(default_factory=list)
    """Training stages run in order before the method itself, each scored on the test
    slice (e.g. sft on alpaca, then the method; or sft then dpo; or sft then rag)."""
    search: dict = field(default_factory=dict)
    """Settings to search, each with a list of values (the method's own settings such as k
    or prompt, or train settings such as lr or lora_r), by successive halving on the
    validation split only (methods/search.py). The chosen setting is the arm; empty: no search."""
    settings: Any = field(default_factory=dict)
    """The method's own settings: the entry's other keys as read (a mapping), made into its
    spec's dataclass by methods.resolve (load_config does it for a file)."""

    def __init__(self, name: str = "zero_shot", train_sizes: list[int] | None = None,
                 label: str | None = None, train: dict | None = None, models: list[str] | None = None,
                 stages: list[StageConfig] | None = None, search: dict | None = None,
                 settings: Any = None, **own):
        """`own`: settings by keyword (MethodConfig(name="few_shot", k=3)), merged into `settings`."""
        self.name, self.label = name, label
        self.train_sizes = [0] if train_sizes is None else train_sizes
        self.train, self.models = train or {}, models or []
        self.stages, self.search = stages or [], search or {}
        settings = {} if settings is None else settings
        if own:
            settings = {**settings, **own} if isinstance(settings, dict) else \
                {**dataclasses.asdict(settings), **own}
        self.settings = settings
        self.__post_init__()

    def __post_init__(self):
        for key, values in self.search.items():
            if not isinstance(values, list) or not values:
                raise TunelabError(f"search.{key}: must be a non-empty list of values")
            if key in SEARCH_TRAIN:  # the method's own keys are checked by its spec (methods)
                for v in values:
                    from_dict(TrainConfig, {key: v}, f"search.{key}")
        if self.search and self.label is None:
            self.label = f"{self.name} searched"


SEARCH_TRAIN = {f.name for f in dataclasses.fields(TrainConfig)} - {"save", "fsdp", "val_size"}
"""Training settings a `search:` may vary (not what changes how an arm is measured); the
method's own settings are searchable too (methods.base.MethodSpec.searchable)."""


@dataclass
class EvalConfig:
    batch_size: int = 16
    """Prompts per generation batch."""
    max_new_tokens: int | None = None
    """Default: the task's own limit."""
    bootstrap: int = 1000
    """Bootstrap resamples for confidence intervals."""
    sequential: bool = True
    """Score the arms in rounds of `round_size` test examples and stop once the comparisons
    the recommendation needs are decided (intervals adjusted for the repeated looks), or the
    test slice is used up. false: score every arm on the whole slice (local executor only;
    ray and accelerate always do)."""
    round_size: int = 20
    """Test examples per round of sequential evaluation; the looks planned are the slice's
    size over this, and every look widens the intervals a little (Bonferroni over looks)."""

    def __post_init__(self):
        if self.round_size < 1:
            raise TunelabError(f"round_size: must be at least 1, got {self.round_size}")


@dataclass
class ReportConfig:
    margin: float = 2.0
    """Points of the primary metric within which two arms count as equivalent ("n=100 is
    within 2 points of n=400"): the 90% CI of their paired difference must lie inside
    +-margin. Also decides "enough examples" and the recommendation's "not worth it"."""
    target: float | None = None
    """The score (primary metric, 0-1, e.g. 0.75) the learning-curve forecast says how many
    more examples would reach; default: the best arm's upper 95% bound."""
    judge: ModelConfig | None = None
    """An OpenAI-compatible model (backend: openai, base_url, api_key_env) that judges the
    headline pair's answers side by side, asked in both orders (eval/judge.py); the report
    adds its preference rate with a CI. Default: no judge. Replies are cached; the key is
    read from the environment, never stored."""

    def __post_init__(self):
        if not 0 < self.margin < 100:  # NaN fails this too
            raise TunelabError(f"margin: must be between 0 and 100 points, got {self.margin}")
        if self.target is not None and not 0 < self.target <= 1:  # a score, not points
            raise TunelabError(f"target: must be a score between 0 and 1 (e.g. 0.75), got {self.target}")


@dataclass
class RunConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    """The task and its data (see TaskConfig)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model every method runs on (see ModelConfig)."""
    models: list[ModelConfig] = field(default_factory=list)
    """Several models in one grid (cells: method x size x seed x model); replaces `model`."""
    methods: list[MethodConfig] = field(default_factory=lambda: [MethodConfig()])
    """The arms to compare: a list of method entries (see MethodConfig and each method's own
    settings)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds; one cell per seed (a seed draws the training subset, the shots and the
    initialisation). The report pools an arm's seeds per example."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training settings for every training method (a method's own `train:` overrides them)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Generation and confidence-interval settings (see EvalConfig)."""
    store: str = "runs/tunelab.db"
    """SQLite results store."""
    out_dir: str = "runs"
    """Where adapters, weights and reports go."""
    allow_leakage: bool = False
    """Run even if test inputs also occur in the training data."""
    executor: str = "local"
    """local (sequential in this process) or ray (cells as Ray tasks; see the scaling-out page
    of the docs)."""
    resources: dict = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0})
    """Ray resources per cell."""
    ray_address: str | None = None
    """Ray cluster to join (default: start a local one, or RAY_ADDRESS if set)."""
    tracking: str | None = None
    """mlflow: also log every finished cell to MLflow (where: MLFLOW_TRACKING_URI)."""
    report: ReportConfig = field(default_factory=ReportConfig)
    """How the report judges differences (see ReportConfig)."""
    cost: CostConfig = field(default_factory=CostConfig)
    """Prices for the report's cost and break-even table (see CostConfig)."""
    export: ExportConfig = field(default_factory=ExportConfig)
    """Export and re-score the best fine-tuned arm (see ExportConfig), e.g. {verify: gguf-q8_0}."""


def read_config(path: str | Path) -> tuple[RunConfig, dict]:
    """A config file as a RunConfig (the shared keys checked) and as the mapping it was
    read from. Its method entries are checked against each method's own spec by
    tunelab.methods.load_config, the one to call: the registry sits above this module."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise TunelabError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise TunelabError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TunelabError(f"{path}: expected a mapping at the top level")
    try:
        return from_dict(RunConfig, data), data
    except TunelabError as e:
        raise TunelabError(f"{path}: {e}") from None


def grid_models(cfg: RunConfig) -> list[ModelConfig]:
    """The grid's models: `models` if given, else the single `model`."""
    return cfg.models or [cfg.model]


def merged_train(cfg: RunConfig, method: MethodConfig, default_lr: float | None) -> TrainConfig:
    """The top-level train settings with the method's overrides applied; an lr set nowhere
    is `default_lr` (the method's own, from its spec: methods.method_train), else DEFAULT_LR."""
    merged = {**to_dict(cfg.train), **method.train}
    if merged.get("lr") is None:
        merged["lr"] = DEFAULT_LR if default_lr is None else default_lr
    return from_dict(TrainConfig, merged, where=f"methods.{method.name}.train")
