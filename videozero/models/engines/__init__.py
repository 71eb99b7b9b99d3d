"""Generation engines behind one interface: transformers `generate` and vLLM (optional, imported lazily)."""
