"""few_shot: k fixed training examples (seeded) as prior chat turns.

The shots are the same for every test input, so generation reuses their KV cache.
"""

from tunelab import TunelabError
from tunelab.data import sample
from tunelab.methods.base import Context, MethodSpec, Shots, chat_predictor, instruction
from tunelab.predictor import Predictor
from tunelab.prompt import shots_of


def build(ctx: Context) -> Predictor:
    if len(ctx.train) < ctx.settings.k:
        raise TunelabError(f"few_shot: k={ctx.settings.k} but only {len(ctx.train)} "
                           "training examples in this cell")
    chosen = sample(ctx.train, ctx.settings.k, ctx.seed)
    shots = shots_of(chosen, ctx.task.user_message)
    info = {"trainable_params": 0, "shots": [e.id for e in chosen]}
    return chat_predictor(ctx, ctx.model, instruction(ctx, "full"), shots, info)


SPEC = MethodSpec("few_shot", Shots, trains=False, needs_local_model=False, build=build)
