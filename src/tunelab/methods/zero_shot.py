"""zero_shot: the task's instruction and the input, through the chat template."""

from tunelab.eval.predictor import Predictor, PredictorInfo
from tunelab.methods.base import Context, MethodSpec, Prompted, chat_predictor, instruction


def build(ctx: Context) -> Predictor:
    return chat_predictor(ctx, ctx.model, instruction(ctx), info=PredictorInfo(trainable_params=0))


SPEC = MethodSpec("zero_shot", Prompted, trains=False, needs_local_model=False, build=build,
                  seeded=False)
