"""dynamic_few_shot: for each input, the k most similar training examples as prior turns.

Similarity is cosine between MiniLM embeddings of the inputs (retrieve.Index, faiss);
the training-set embeddings are cached on disk by content hash, so they are computed
once per training subset. Shots differ per example, so only the instruction's KV cache
is shared during generation; the longer prompts are a real cost, stored per run. The
example's whole conversation (task.turns) follows the shots, as in few_shot.
"""

from tunelab import TunelabError
from tunelab.backends.prompt import messages, shots_of
from tunelab.backends.retrieve import Index
from tunelab.data.readers import Example
from tunelab.eval.predictor import ChatPredictor, Predictor, PredictorInfo
from tunelab.methods.base import Context, MethodSpec, Shots, instruction


def build(ctx: Context) -> Predictor:
    k = ctx.settings.k
    if len(ctx.train) < k:
        raise TunelabError(f"dynamic_few_shot: k={k} but only {len(ctx.train)} "
                           "training examples in this cell")
    task = ctx.task
    index = Index([e.id for e in ctx.train], [task.user_message(e) for e in ctx.train])
    system = instruction(ctx)
    info = PredictorInfo(trainable_params=0, shots={})

    def to_msgs(ex: Example) -> list[dict]:
        (rows,) = index.search([task.user_message(ex)], k)
        # most similar last: nearest to the question it precedes
        chosen = [ctx.train[i] for i in reversed(rows)]
        info.shots[ex.id] = [e.id for e in chosen]
        return messages(system, task.turns(ex), shots_of(chosen, task.user_message))

    return ChatPredictor(ctx.model, ctx.tok, to_msgs, info)


SPEC = MethodSpec("dynamic_few_shot", Shots, trains=False, needs_local_model=False, build=build)
