"""few_shot: k fixed training examples (seeded) as prior chat turns.

The shots are the same for every test input, so generation reuses their KV cache. Which
shots are drawn can move the score by more than the pool's size does (on ViGGO one draw's
last shot was copied into most answers), so the draw is a setting a search
can choose on validation.
"""

from dataclasses import dataclass

from tunelab import TunelabError
from tunelab.backends.prompt import shots_of
from tunelab.data.readers import sample
from tunelab.eval.predictor import Predictor, PredictorInfo
from tunelab.methods.base import PROMPTING, Context, MethodSpec, Shots, chat_predictor, instruction, setting


@dataclass
class Settings(Shots):
    draw: int | None = None
    """Which seeded draw of the k shots from the pool; default: the cell's seed."""


def build(ctx: Context) -> Predictor:
    if len(ctx.train) < ctx.settings.k:
        raise TunelabError(f"few_shot: k={ctx.settings.k} but only {len(ctx.train)} "
                           "training examples in this cell")
    draw = setting(ctx, "draw")
    chosen = sample(ctx.train, ctx.settings.k, draw)
    shots = shots_of(chosen, ctx.task.user_message)
    info = PredictorInfo(trainable_params=0, shots=[e.id for e in chosen])
    return chat_predictor(ctx, ctx.model, instruction(ctx), shots, info)


SPEC = MethodSpec("few_shot", Settings, trains=False, needs_local_model=False, build=build,
                  unset={**PROMPTING, "draw": lambda ctx: ctx.seed})
