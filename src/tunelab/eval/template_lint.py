"""Template lint: the prompt a model was trained on, the one it was evaluated on and the
one its exported chat template renders must be one string, and replies must end on the
same stop tokens. A model served with another template or EOS "behaves as if no training
was applied" (a recurring report in other trainers' trackers); this catches it before a
score is stored or an artifact ships, with one line naming the first difference.
"""

from __future__ import annotations

from tunelab import TunelabError
from tunelab.backends.local_model import stop_ids
from tunelab.backends.prompt import render, render_pair
from tunelab.eval.predictor import prompt_text

SHOWN = 30
"""Characters of each rendering shown around a difference."""


def first_difference(a: str, b: str) -> int | None:
    """Index of the first differing character, or None when equal.

    >>> first_difference("abc", "abd"), first_difference("ab", "abc"), first_difference("x", "x")
    (2, 2, None)
    """
    if a == b:
        return None
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def same(renderings: dict[str, str], where: str) -> None:
    """Raise one line naming the first two renderings that differ and where."""
    (name_a, a), *rest = renderings.items()
    for name_b, b in rest:
        i = first_difference(a, b)
        if i is not None:
            raise TunelabError(
                f"template lint: {where}: the {name_a} and {name_b} prompts differ at character "
                f"{i}: {name_a} has {a[i:i + SHOWN]!r}, {name_b} has {b[i:i + SHOWN]!r}")


def end_token(tok, msgs: list[dict], completion: str) -> str | None:
    """The token training puts right after the completion (the end of the assistant turn)."""
    prompt, full = render_pair(tok, msgs, completion)
    rest = full[len(prompt) + len(completion):] if full.startswith(prompt + completion) else ""
    ids = tok(rest, add_special_tokens=False)["input_ids"]
    return tok.convert_ids_to_tokens(ids[0]) if ids else None


def stops(tok_a, tok_b, names: tuple[str, str], msgs: list[dict], completion: str) -> None:
    """Both tokenizers stop generation on the same tokens, and that set holds the token
    training ends each answer with (else a served model runs on past its answer)."""
    a = tok_a.convert_ids_to_tokens(stop_ids(tok_a))
    b = tok_b.convert_ids_to_tokens(stop_ids(tok_b))
    if a != b or tok_a.eos_token != tok_b.eos_token:
        raise TunelabError(f"template lint: stop tokens differ: {names[0]} eos {tok_a.eos_token!r} "
                           f"stops {a}, {names[1]} eos {tok_b.eos_token!r} stops {b}")
    end = end_token(tok_a, msgs, completion)
    if end is not None and end not in a:
        raise TunelabError(f"template lint: training ends answers with {end!r}, but generation "
                           f"stops only at {a}")


def check_predictor(pred, example, train_prompt: str) -> None:
    """Before evaluating a trained cell: the prompt training rendered for `example` (stored
    by fine_tune) is the one evaluation renders for it."""
    same({"training": train_prompt, "evaluation": prompt_text(pred, example)}, f"example {example.id}")


def check_export(tok, exported, msgs: list[dict], evaluated: str | None, completion: str,
                 where: str) -> None:
    """Before shipping: training (base tokenizer), evaluation (the stored prompt) and the
    exported template, with the system prompt and without it (a server sending only the
    user turn), render one string; stop tokens match."""
    renderings = {"training": render_pair(tok, msgs, completion)[0]}
    if evaluated is not None:
        renderings["evaluation"] = evaluated
    renderings["exported"] = render(exported, msgs)
    if msgs and msgs[0]["role"] == "system":
        renderings["exported (no system turn)"] = render(exported, msgs[1:])
    same(renderings, where)
    stops(tok, exported, ("training", "exported"), msgs, completion)
