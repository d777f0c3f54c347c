"""Make examples/viggo_acts.jsonl: 200 prompt/completion records for dialogue-act classification.

Run from the repository root:
    python examples/make_viggo_acts.py

prompt = a ViGGO sentence (`ref`), completion = the dialogue act of its meaning
representation (`mr`, the name before the parenthesis: inform, request, ...). A seeded
sample of 22 sentences per act (24 of `inform`), from ViGGO's train.csv, in a shuffled
order; the same data and seed give the same file byte for byte.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

PER_ACT, EXTRA_INFORM, SEED = 22, 2, 0


def main() -> None:
    from tunelab.data.datasource import resolve

    src = resolve("viggo") / "train.csv"  # the mirror if $TUNELAB_DATA_DIR has one, else shipped
    by_act = defaultdict(list)
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            by_act[row["mr"].split("(", 1)[0].strip()].append(row["ref"].strip())
    rng = random.Random(SEED)
    records = []
    for act in sorted(by_act):
        sentences = sorted(set(by_act[act]))
        n = PER_ACT + (EXTRA_INFORM if act == "inform" else 0)
        records += [{"prompt": s, "completion": act} for s in rng.sample(sentences, n)]
    rng.shuffle(records)
    out = Path(__file__).with_name("viggo_acts.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    print(f"wrote {len(records)} records to {out}")


if __name__ == "__main__":
    main()
