"""Video LMs: one loader, prompts with timestamped video, the local checkpoints (nano, tiny-qwen), engines."""
