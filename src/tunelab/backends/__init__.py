"""Backends: the models that answer. Loading a local Hugging Face model (packaged GGUF,
path or hub id), an OpenAI-compatible endpoint, batched generation, chat rendering of
prompts, device placement, sentence embeddings and the dense retrieval index built on
them."""
