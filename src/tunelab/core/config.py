"""Run configuration: YAML mapped onto typed dataclasses, saved with every result.

Unknown keys fail with one line naming the key and what is allowed, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tunelab import TunelabError


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
SCORINGS = ("auto", "classification", "text")


MODEL_IDENTITY = ("name", "dtype", "trust_remote_code", "backend", "base_url", "quantize")
"""The model fields that decide which weights answer (the rest: retries, prices, speed,
device). quantize enters only when set (added later: at none, keys are as before). Cell
keys (run/keys.py) and distill's teacher cache hash these."""


def model_identity(model: ModelConfig) -> dict:
    return {k: v for k, v in to_dict(model).items()
            if k in MODEL_IDENTITY and not (k == "quantize" and v == "none")}


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
    method's own (METHOD_LR): LoRA, full fine-tuning and soft prompts want rates 600x
    apart, and one shared default under-trains some of them."""
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


METHOD_LR = {"lora": 2e-3, "distill": 2e-3, "full": 5e-5, "prompt_tuning": 3e-2, "dpo": 1e-4}
"""Default peak lr per training method (distill's student is LoRA): the rates the shipped
configs were tuned with on ViGGO (LoRA's against 1e-3 on the demo's grid; the others the
rates the shipped configs and benchmarks use). `train.lr` overrides them."""
DEFAULT_LR = 1e-3
"""A method without a rate of its own in METHOD_LR (e.g. rag with an sft stage: a stage
trains at its method's lr unless it sets one), and a loop run outside a method without an
lr (tests, benches): the former LoRA default, kept where 2e-3 has not been measured."""

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class StageConfig:
    kind: str = "sft"
    """What this stage trains: sft (LoRA, merged afterwards) or dpo (preference pairs)."""
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


@dataclass
class MethodConfig:
    name: str = "zero_shot"
    """Method name (see METHODS)."""
    train_sizes: list[int] = field(default_factory=lambda: [0])
    """Training-set sizes; one cell per size. Prompting methods use the pool for shots.
    For a method that trains, 0 (the default) is the whole training split."""
    k: int = 5
    """Number of in-context examples (few-shot)."""
    draw: int | None = None
    """few_shot: which seeded draw of the k shots from the pool (default: the cell's seed);
    `search: {draw: [0, 1, 2, 3]}` chooses the shots on validation."""
    prompt: str | None = None
    """Instruction in the prompt: 'full' (the task's long one) or 'short'. Default: full
    for prompting methods, short for fine-tuned ones (a tuned model learned the format)."""
    label: str | None = None
    """Display name in the report (default: the method name)."""
    train: dict = field(default_factory=dict)
    """Overrides of the top-level train settings for this method."""
    models: list[str] = field(default_factory=list)
    """Run this method only on these models of the grid (by name; default: all)."""
    stages: list[StageConfig] = field(default_factory=list)
    """Training stages run in order before the method itself, each scored on the test
    slice (e.g. sft on alpaca, then the method; or sft then dpo; or sft then rag)."""
    chunk_size: int = 800
    """rag: characters per corpus chunk."""
    chunk_overlap: int = 150
    """rag: characters shared by consecutive chunks, so no fact is cut in two everywhere."""
    budget: int = 12
    """prompt_search: evaluations (instruction x shot subset) on the dev slice."""
    dev_size: int = 20
    """prompt_search: validation examples in the dev slice (the test split is never used)."""
    beta: float = 0.1
    """dpo: strength of the KL pull towards the reference model."""
    virtual_tokens: int = 20
    """prompt_tuning: number of trainable soft-prompt embeddings."""
    teacher: str = "dynamic_few_shot"
    """distill: the prompting method that labels the student's training inputs."""
    teacher_model: str | None = None
    """distill: the model (by name, one of the grid's) the teacher runs on; default: the
    cell's own."""
    labelled: int = 100
    """distill: gold examples the teacher draws on (the first of the seeded training sample,
    the same ones a teacher arm at this train size gets)."""
    unlabelled: str | None = None
    """distill: JSONL of inputs (field `input`) for the teacher to label, path absolute or
    relative to $TUNELAB_DATA_DIR; default: training inputs with their targets hidden."""
    keep_cut: bool = False
    """distill: also train on teacher answers cut off at the generation limit (default: drop
    them; an unfinished answer, often a repetition loop)."""
    search: dict = field(default_factory=dict)
    """Settings to search, each with a list of values (method settings such as k or
    prompt, or train settings such as lr or lora_r), by successive halving on the
    validation split only (search.py). The chosen setting is the arm; empty: no search."""

    def __post_init__(self):
        for key, values in self.search.items():
            cls = TrainConfig if key in SEARCH_TRAIN else MethodConfig
            if key not in SEARCH_TRAIN | SEARCH_METHOD:
                raise TunelabError(f"search.{key}: not a searchable setting. Available: "
                                   f"{', '.join(sorted(SEARCH_TRAIN | SEARCH_METHOD))}")
            if not isinstance(values, list) or not values:
                raise TunelabError(f"search.{key}: must be a non-empty list of values")
            for v in values:
                from_dict(cls, {key: v}, f"search.{key}")
        if self.search and self.label is None:
            self.label = f"{self.name} searched"


SEARCH_METHOD = {f.name for f in dataclasses.fields(MethodConfig)} - {
    "name", "label", "train", "models", "stages", "search", "train_sizes"}
SEARCH_TRAIN = {f.name for f in dataclasses.fields(TrainConfig)} - {"save", "fsdp", "val_size"}
"""Settings a `search:` may vary: the method's own and training's, not what names the arm,
places it in the grid, or changes how it is measured."""


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

    def __post_init__(self):
        if not 0 < self.margin < 100:  # NaN fails this too
            raise TunelabError(f"margin: must be between 0 and 100 points, got {self.margin}")
        if self.target is not None and not 0 < self.target <= 1:  # a score, not points
            raise TunelabError(f"target: must be a score between 0 and 1 (e.g. 0.75), got {self.target}")


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


def _convert(tp, value, where: str):
    """Coerce a YAML value to the annotated type, or fail naming the key."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TunelabError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for a in args:
            try:
                return _convert(a, value, where)
            except TunelabError:
                continue
        raise TunelabError(f"{where}: {value!r} is not a valid {tp}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value]
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise TunelabError(f"{where}: expected a mapping")
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise TunelabError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, data: dict, where: str = "config"):
    """Build dataclass `cls` from a dict, rejecting unknown keys. A dataclass's own check
    (__post_init__) raises naming its field first; `where` is put before it."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise TunelabError(
            f"{where}: unknown key '{unknown[0]}'. Available: {', '.join(names)}"
        )
    values = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except TunelabError as e:
        raise TunelabError(f"{where}.{e}") from None


def field_docs(cls) -> dict[str, str]:
    """Each field of dataclass `cls` with its docstring (the string under it in the class
    body; "" if none), in order: the help text of `tunelab tasks NAME`.

    >>> field_docs(EvalConfig)["batch_size"]
    'Prompts per generation batch.'
    """
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                    and isinstance(after.value.value, str):
                doc = " ".join(after.value.value.split())
            docs[node.target.id] = doc
    return docs


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


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def grid_models(cfg: RunConfig) -> list[ModelConfig]:
    """The grid's models: `models` if given, else the single `model`."""
    return cfg.models or [cfg.model]


def method_train(cfg: RunConfig, method: MethodConfig) -> TrainConfig:
    """The top-level train settings with the method's overrides applied."""
    merged = {**to_dict(cfg.train), **method.train}
    if merged.get("lr") is None:
        merged["lr"] = METHOD_LR.get(method.name, DEFAULT_LR)
    return from_dict(TrainConfig, merged, where=f"methods.{method.name}.train")
