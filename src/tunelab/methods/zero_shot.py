"""zero_shot: the task's instruction and the input, through the chat template."""

from tunelab.methods.base import Context, Predictor, chat_predictor, instruction


def build(ctx: Context) -> Predictor:
    return chat_predictor(ctx, ctx.model, instruction(ctx, "full"), info={"trainable_params": 0})
