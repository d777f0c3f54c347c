"""Ship: exporting a trained cell (adapter, merged safetensors or GGUF) and re-scoring the
exported artifact through the same evaluation."""
