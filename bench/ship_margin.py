"""Where an exported artifact's greedy answer leaves the stored one, and by how much.

For each test example whose prediction differs between two exports of one cell (e.g.
merged and gguf-f16, stored by `tunelab export --verify`), follow the first artifact's
greedy tokens and report the first position where the second's argmax differs, with each
model's top-2 logit gap there: a gap near zero in the reference model is a near-tie that
rounding the weights (f16, q8_0) can flip, not a template or loading fault.

Run from the repository root with the venv activated (writes results/bench_ship_margin.json):
    python bench/ship_margin.py --store S --run RUN_ID --a DIR_OR_GGUF --b DIR_OR_GGUF \
        --label-a merged --label-b gguf-f16
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import torch
from common import emit

from tunelab.eval.predictor import prompt_text
from tunelab.methods.base import chat_predictor
from tunelab.ship.export import load_source
from tunelab.ship.verify import load_artifact


def differing(store: str, run_id: str, a: str, b: str) -> list[str]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)

    def preds(rid: str) -> dict:
        return dict(con.execute("SELECT example_id, prediction FROM predictions WHERE run_id=?", (rid,)))

    pa, pb = preds(f"export:{a}:{run_id}"), preds(f"export:{b}:{run_id}")
    return [k for k in pa if pa[k] != pb.get(k)]


@torch.no_grad()
def first_split(ma, mb, tok, prompt: str, max_new: int = 96) -> dict | None:
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    for pos in range(max_new):
        la, lb = ma(ids).logits[0, -1].float(), mb(ids).logits[0, -1].float()
        ta, tb = int(la.argmax()), int(lb.argmax())
        if ta != tb:
            def gap(logits, first, second):
                return float(logits[first] - logits[second])

            return {"position": pos, "token_a": tok.decode([ta]), "token_b": tok.decode([tb]),
                    "gap_a (a's top minus b's top, in a)": gap(la, ta, tb),
                    "gap_b (b's top minus a's top, in b)": gap(lb, tb, ta)}
        if ta == tok.eos_token_id:
            return None
        ids = torch.cat([ids, torch.tensor([[ta]])], dim=1)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--a", required=True, type=Path)
    ap.add_argument("--b", required=True, type=Path)
    ap.add_argument("--label-a", default="merged")
    ap.add_argument("--label-b", default="gguf-f16")
    args = ap.parse_args()
    src = load_source(args.store, args.run)
    (ma, tok), (mb, _) = load_artifact(src, args.a), load_artifact(src, args.b)
    pred = chat_predictor(argparse.Namespace(tok=tok, task=src.task), ma, src.system)
    by_id = {e.id: e for e in src.test}
    rows = []
    for eid in differing(args.store, src.run["id"], args.label_a, args.label_b):
        split = first_split(ma, mb, tok, prompt_text(pred, by_id[eid]))
        rows.append({"example": eid, **(split or {"split": "none within 96 tokens"})})
        print(json.dumps(rows[-1]))
    emit({"a": args.label_a, "b": args.label_b, "examples_differing": len(rows)}, rows)


if __name__ == "__main__":
    main()
