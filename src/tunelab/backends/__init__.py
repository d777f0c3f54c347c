"""Backends: the models that answer. One interface (base.Backend: load, generate, count
tokens, device, cost, identity), implemented by a local Hugging Face model (hf.py over
local_model.py: packaged GGUF, path or hub id; generate.py: batched generation) and an
OpenAI-compatible endpoint (openai_api.py, which imports no torch); registry.BACKENDS
picks one by ModelConfig.backend or by the model object. Beside them: chat rendering of
prompts, device placement, sentence embeddings and the dense retrieval index built on them."""
