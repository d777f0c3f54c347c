"""Eval: running a predictor over examples (per-example predictions, scores, costs,
bootstrap intervals), the Predictor protocol, and the template lint that checks training,
evaluation and export render the same prompt."""
