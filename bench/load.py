"""Model load time: packaged GGUF (first load: dequantize + write the cache) vs cached.

Run from the repository root with the venv activated, alone on the machine:
    python bench/load.py        # writes results/bench_load.json

Each load runs in a fresh process (as a user's `tunelab run` would) with TUNELAB_CACHE
pointing at a new empty folder, so the first load really is the first; wall time of
load_model() and the process's peak RSS are reported. The import of transformers' Llama
code and tunelab.backends.local_model is timed separately first (`*_import_s`): every process pays it
once, whatever model it loads; `*_load_s` is the model itself (read, build, tokenizer).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Timer, emit, load, machine, peak_rss_gb  # noqa: E402


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        with Timer() as imp:  # the libraries, imported once per process whatever is loaded
            import transformers.models.llama.modeling_llama  # noqa: F401

            import tunelab.backends.local_model  # noqa: F401
        with Timer() as t:
            load()
        print("RESULT " + json.dumps({"s": t.s, "import_s": imp.s, "peak": peak_rss_gb()}))
        return
    figures = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TUNELAB_CACHE": cache}
        for name in ("first", "cached", "cached_again"):
            out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True,
                                 text=True, check=True)
            r = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
            figures |= {f"{name}_import_s": r["import_s"], f"{name}_load_s": r["s"],
                        f"{name}_peak_rss_gb": r["peak"]}
    print(f"machine: {machine()}")
    emit(figures)


if __name__ == "__main__":
    main()
