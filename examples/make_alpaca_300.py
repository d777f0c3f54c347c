"""Make examples/alpaca_300.jsonl: 300 Alpaca records (instruction/input/output), free text.

Run from the repository root:
    TUNELAB_DATA_DIR=../shared/data python examples/make_alpaca_300.py

A seeded sample of 300 records with a non-empty output from the 5,000-row Alpaca sample
(`alpaca/alpaca_5000.json`), in sampled order; the same data and seed give the same file
byte for byte. Its answers are long free text, the case where exact match cannot move.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

N, SEED = 300, 0


def main() -> None:
    src = Path(os.environ.get("TUNELAB_DATA_DIR", "../shared/data")) / "alpaca" / "alpaca_5000.json"
    records = [r for r in json.loads(src.read_text()) if r["output"].strip()]
    chosen = random.Random(SEED).sample(records, N)
    out = Path(__file__).with_name("alpaca_300.jsonl")
    out.write_text("".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")},
                                      ensure_ascii=False) + "\n" for r in chosen))
    words = sum(len(r["output"].split()) for r in chosen) / N
    print(f"wrote {N} records to {out}; outputs average {words:.1f} words")


if __name__ == "__main__":
    main()
