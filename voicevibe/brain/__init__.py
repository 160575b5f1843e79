"""The prompt brain: phrases to English image prompts (local GGUF, a server, or the fallback builder)."""
