"""openai backend: prompting baselines against any OpenAI-compatible chat endpoint.

The official client does the retries (exponential backoff on 429, timeouts and 5xx);
a thread pool bounds the requests in flight. The key is read from the environment
variable named in the config and is never stored, logged or put in an error message.
Token counts come from each response's `usage` field, so the cost table is exact.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from tunelab import TunelabError
from tunelab.backends.generation import Generation
from tunelab.core.config import MODEL_IDENTITY, ModelConfig, to_dict
from tunelab.core.ui import progress


class ApiModel:
    """Stands where a local model would: methods pass it through; OpenAIBackend asks it."""

    tunelab_backend = "openai"  # backends/base.BACKEND_ATTR: registry.backend_of finds the backend by it

    def __init__(self, cfg: ModelConfig):
        import openai

        if not cfg.base_url:
            raise TunelabError(f"model '{cfg.name}': the openai backend needs model.base_url")
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise TunelabError(f"model '{cfg.name}': set the API key in the environment "
                               f"variable {cfg.api_key_env}")
        self.cfg = cfg
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=key,
                                    max_retries=cfg.max_retries, timeout=cfg.timeout)

    def _one(self, msgs: list[dict], max_new: int) -> Generation:
        import openai

        t0 = time.perf_counter()
        try:
            r = self.client.chat.completions.create(
                model=self.cfg.name, messages=msgs, max_tokens=max_new, temperature=0.0)
        except openai.APIError as e:  # message carries no key: the client never echoes it
            raise TunelabError(f"model '{self.cfg.name}' at {self.cfg.base_url}: "
                               f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
        usage = r.usage
        return Generation(r.choices[0].message.content or "",
                          usage.prompt_tokens if usage else 0,
                          usage.completion_tokens if usage else 0,
                          time.perf_counter() - t0)

    def chat(self, conversations: list[list[dict]], max_new: int, label: str = "api") -> list[Generation]:
        """One reply per conversation, in order, with at most `concurrency` in flight."""
        out: list[Generation | None] = [None] * len(conversations)
        with progress() as bar, ThreadPoolExecutor(self.cfg.concurrency) as pool:
            task = bar.add_task(label, total=len(conversations), info="")
            futures = {pool.submit(self._one, c, max_new): i for i, c in enumerate(conversations)}
            for f, i in futures.items():
                out[i] = f.result()
                bar.update(task, advance=1)
        return out

    def cost(self, prompt_tokens: int, gen_tokens: int) -> float:
        """Dollars for this many tokens at the configured per-million prices."""
        return (prompt_tokens * self.cfg.price_prompt + gen_tokens * self.cfg.price_completion) / 1e6


class OpenAIBackend:
    """backends.base.Backend for an OpenAI-compatible endpoint; its model objects are ApiModels."""

    name = "openai"
    is_local = False

    def load(self, cfg: ModelConfig) -> tuple[ApiModel, None]:
        return ApiModel(cfg), None

    def generate(self, model: ApiModel, tok, conversations: list[list[dict]], texts: list[str],
                 max_new: int, *, batch_size: int, label: str, one_line: bool) -> list[Generation]:
        # the messages themselves are sent (texts are their JSON); the server batches
        return model.chat(conversations, max_new, label=label)

    def count_tokens(self, tok, text: str) -> None:
        return None  # the server's tokenizer: counts come with each response (usage)

    def device(self, model: ApiModel) -> str:
        return "api"

    def cost(self, model: ApiModel, prompt_tokens: int, gen_tokens: int) -> float:
        return model.cost(prompt_tokens, gen_tokens)

    def prices(self, model: ApiModel) -> list[float | None]:
        return [model.cfg.price_prompt or None, model.cfg.price_completion or None]

    def identity(self, model: ApiModel) -> dict:
        return {k: v for k, v in to_dict(model.cfg).items() if k in MODEL_IDENTITY}
