"""Rendering chat messages into model text, with a plain fallback for base models.

Prompts go through the tokenizer's own chat template when it has one, so evaluation and
training see exactly the format the model was tuned on.
"""

from __future__ import annotations

import hashlib

from tunelab.data.readers import Example

PLAIN_ROLES = {"system": "### Instruction", "user": "### Input", "assistant": "### Response"}


def messages(instruction: str, user: str | list[dict], shots: list[tuple[str, str]] = ()) -> list[dict]:
    """System instruction, then (user, assistant) shot pairs, then the user's input: one
    message, or a conversation's turns (its own system turn joins the instruction)."""
    turns = [{"role": "user", "content": user}] if isinstance(user, str) else list(user)
    if turns and turns[0]["role"] == "system":
        instruction = "\n\n".join(x for x in (instruction, turns[0]["content"]) if x)
        turns = turns[1:]
    msgs = [{"role": "system", "content": instruction}] if instruction else []
    for question, answer in shots:
        msgs += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return msgs + turns


def _plain(msgs: list[dict], add_generation_prompt: bool, eos: str, bos: str = "") -> str:
    # Base models were pretrained on text starting with BOS (Gemma degrades badly without
    # it); chat templates add it themselves where the model wants it.
    parts = [bos]
    for m in msgs:
        end = eos if m["role"] == "assistant" else ""
        parts.append(f"{PLAIN_ROLES.get(m['role'], m['role'])}:\n{m['content']}{end}\n\n")
    if add_generation_prompt:
        parts.append(f"{PLAIN_ROLES['assistant']}:\n")
    return "".join(parts)


def render(tok, msgs: list[dict], add_generation_prompt: bool = True) -> str:
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    return _plain(msgs, add_generation_prompt, tok.eos_token or "", tok.bos_token or "")


def render_pair(tok, msgs: list[dict], completion: str) -> tuple[str, str]:
    """(prompt text, prompt + completion text) for a training example."""
    prompt = render(tok, msgs, add_generation_prompt=True)
    full = render(tok, [*msgs, {"role": "assistant", "content": completion}], False)
    return prompt, full


def template_hash(tok) -> str:
    """Short hash of the chat template, stored with results (template drift moves scores)."""
    text = getattr(tok, "chat_template", None) or "plain"
    return hashlib.sha256(str(text).encode()).hexdigest()[:12]


def shots_of(examples: list[Example], user_message) -> list[tuple[str, str]]:
    return [(user_message(e), e.target) for e in examples]
