"""dynamic_few_shot: for each input, the k most similar training examples as prior turns.

Similarity is cosine between MiniLM embeddings of the inputs (retrieve.Index, faiss);
the training-set embeddings are cached on disk by content hash, so they are computed
once per training subset. Shots differ per example, so only the instruction's KV cache
is shared during generation; the longer prompts are a real cost, stored per run.
"""

from tunelab import TunelabError
from tunelab.data import Example
from tunelab.methods.base import Context, Predictor, instruction
from tunelab.prompt import messages, render, shots_of
from tunelab.retrieve import Index


def build(ctx: Context) -> Predictor:
    if len(ctx.train) < ctx.method.k:
        raise TunelabError(f"dynamic_few_shot: k={ctx.method.k} but only {len(ctx.train)} "
                           "training examples in this cell")
    task, tok = ctx.task, ctx.tok
    index = Index([e.id for e in ctx.train], [task.user_message(e) for e in ctx.train])
    system = instruction(ctx, "full")
    info = {"trainable_params": 0, "shots": {}}

    def to_text(ex: Example) -> str:
        (rows,) = index.search([task.user_message(ex)], ctx.method.k)
        # most similar last: nearest to the question it precedes
        chosen = [ctx.train[i] for i in reversed(rows)]
        info["shots"][ex.id] = [e.id for e in chosen]
        return render(tok, messages(system, task.user_message(ex), shots_of(chosen, task.user_message)))

    return Predictor(ctx.model, tok, to_text, info)
