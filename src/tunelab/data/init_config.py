"""`tunelab init FILE`: look at a user's data file and write a runnable, commented config.

What it finds (format, size, whether the completions look like labels, the splits the
run will make) is computed with the same readers, split and scoring rule the run uses,
so the config it writes behaves as it says.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import TunelabError
from tunelab.data.readers import DataError, Example, detect_format, read_examples, read_records, split
from tunelab.data.scoring import KIND_METRICS, Scoring, choose

MIN_RECORDS = 10


@dataclass
class Profile:
    path: Path
    examples: list[Example]
    formats: Counter
    bad: list[DataError]
    split_fraction: float
    sizes: dict[str, int]
    """train, validation, test: what the run's made splits will hold."""
    scoring: Scoring
    targets: Counter = field(default_factory=Counter)

    @property
    def fmt(self) -> str:
        return ", ".join(f"{n} ({c})" for n, c in self.formats.most_common()) if len(self.formats) > 1 \
            else next(iter(self.formats))

    def words(self, attr: str) -> tuple[float, int]:
        n = [len(getattr(e, attr).split()) for e in self.examples]
        return sum(n) / len(n), max(n)

    def lines(self) -> list[str]:
        """What was found, for the terminal."""
        s, avg_in, avg_out = self.sizes, self.words("input"), self.words("target")
        out = [f"{self.path}: {len(self.examples)} records, format {self.fmt}",
               f"inputs: {avg_in[0]:.0f} words on average (longest {avg_in[1]}); completions: "
               f"{avg_out[0]:.1f} words on average, {len(self.targets)} distinct",
               f"scoring: {self.scoring.kind}: {self.scoring.why}"]
        if self.scoring.kind == "classification":
            counts = Counter(e.target.strip() for e in self.examples)
            out.append("labels: " + ", ".join(f"{lab} ({counts[lab]})" for lab in self.scoring.labels))
        out.append(f"splits (split_fraction {self.split_fraction}, split_seed 0): train {s['train']}, "
                   f"validation {s['validation']}, test {s['test']}")
        if self.bad:
            out.append(f"warning: {len(self.bad)} bad records, which stop a run; first: {self.bad[0]} "
                       f"(all of them: tunelab data check {self.path})")
        return out


def inspect_file(path: str | Path) -> Profile:
    """Read the file as the jsonl task will and work out its splits and scoring."""
    path = Path(path)
    bad: list[DataError] = []
    examples = read_examples(path, "auto", bad)
    if len(examples) < MIN_RECORDS:
        why = f"; first bad record: {bad[0]}" if bad else ""
        raise TunelabError(f"{path}: {len(examples)} usable records, need at least {MIN_RECORDS} "
                           f"to make train/validation/test splits{why}")
    formats = Counter()
    for line, rec in read_records(path, []):
        try:
            formats[detect_format(rec, f"{path}:{line}")] += 1
        except DataError:
            pass
    fraction = 0.2 if len(examples) < 300 else 0.1
    rest, test = split(examples, fraction, 0)  # as Task.file_splits makes them
    train, validation = split(rest, fraction, 1)
    sizes = {"train": len(train), "validation": len(validation), "test": len(test)}
    scoring = choose([e.target for e in train])
    return Profile(path, examples, formats, bad, fraction, sizes, scoring,
                   Counter(e.target.strip() for e in examples))


TEMPLATE = """\
# tunelab run {config}
# Your own data: {path} ({n} records, {fmt}). Written by `tunelab init`; edit freely.
# Task keys and what they do: `tunelab tasks jsonl`. More methods: configs/alternatives.yaml.
task:
  name: jsonl               # the task for your own files
  train: {path_yaml}  # JSONL (prompt/completion, messages, alpaca, text/label), JSON array or CSV;
                            # relative paths: from where you run tunelab, then $TUNELAB_DATA_DIR
  # test: my_test.jsonl     # optional: your own test file (else split_fraction of train is held out)
  # validation: my_val.jsonl  # optional: your own validation file (else made like test)
  format: auto              # per record: prompt_completion, messages, alpaca, label (text/label), or auto
  scoring: auto             # auto | classification | text; auto decides here: {kind}
{why}
{metric_line}
  split_fraction: {fraction}       # share held out for test, then (of the rest) for validation
  split_seed: 0             # seed of those splits and of the test slice
  n_test: {n_test}               # test examples scored (the made test split has {n_test}); more: tighter CIs
  # instruction: "..."      # your own system prompt (default: {instruction_note})
model:
  name: smollm2-135m        # packaged model (smollm2-135m, gemma3-270m), a local path, or a hub id
train:                      # for every method that trains; a method may override: train: {{lr: ...}}
  # lr: 0.002               # peak learning rate for every method; unset: each its own ({lr_note})
  batch_size: 8             # examples per optimizer step
  epochs: auto              # until the validation loss stops improving (best weights kept), or a number
  max_epochs: 8             # epochs auto: the budget (also max_steps, max_seconds) ...
  min_budget: 256           # ... but at least this many steps (small files get more passes)
  max_length: {max_length}           # longest tokenised example; longer ones are truncated (and counted)
eval:
  batch_size: 16            # prompts per generation batch
seeds: [0]                  # e.g. [0, 1, 2]: the report then shows the spread over seeds
methods:                    # cells = method x training size x seed; finished cells are skipped on re-run
  - {{name: zero_shot}}                          # the instruction alone
  - {{name: few_shot, k: {k}, train_sizes: [{few}]}}     # k examples in the prompt, drawn from N
  - {{name: lora, train_sizes: [{sizes}]}}          # LoRA fine-tuned on N training examples
store: runs/{stem}.db       # results (SQLite); `tunelab ls --store runs/{stem}.db`
out_dir: runs/{stem}        # adapters, and the report in report/report.html
"""


def render(p: Profile, config: str | Path, lrs: dict[str, float]) -> str:
    """The config text for profile `p`, to be written at `config`; `lrs`: each training
    method's default lr, for the note (the method registry sits above this module)."""
    pool = p.sizes["train"]
    sizes = sorted({min(pool, 100), min(pool, 1000)})
    labels = len(p.scoring.labels)
    k = min(pool, max(5, min(labels, 10))) if labels else min(pool, 5 if p.words("target")[0] < 50 else 3)
    longest = max(p.words("input")[1] + p.words("target")[1], 1)
    max_length = 256 if longest < 120 else 512 if longest < 300 else 1024  # ~1.5 tokens a word
    classify = p.scoring.kind == "classification"
    metrics = ["label_match", "macro_f1"] if classify else KIND_METRICS[p.scoring.kind]
    why = textwrap.wrap(f"why: {p.scoring.why}", 90)
    return TEMPLATE.format(
        config=config, path=p.path, path_yaml=json.dumps(str(p.path)), n=len(p.examples), fmt=p.fmt,
        kind=p.scoring.kind, why="\n".join(f"{'':28}# {w}" for w in why),
        metric_line=f"  # metric: {metrics[0]}".ljust(27) + f" # the primary metric (the verdict's); "
                    f"{p.scoring.kind} scores {', '.join(metrics)}",
        fraction=p.split_fraction, n_test=p.sizes["test"],
        instruction_note="lists the labels, asks for one" if classify else "reply with the answer only",
        lr_note=", ".join(f"{m} {v:g}" for m, v in lrs.items()), max_length=max_length, k=k,
        few=min(pool, 100), sizes=", ".join(map(str, sizes)),
        stem=p.path.stem)


def write_config(data: str | Path, out: str | Path, lrs: dict[str, float], force: bool = False) -> Profile:
    """Inspect `data`, write its config at `out` (never over an existing file unless `force`);
    `lrs` as render's."""
    out = Path(out)
    if out.exists() and not force:
        raise TunelabError(f"{out}: already exists; pass --force to overwrite or -o another path")
    p = inspect_file(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(p, out, lrs))
    return p
