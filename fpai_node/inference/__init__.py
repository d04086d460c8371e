"""Inference backends behind one `Backend` protocol: llama.cpp in process, vLLM supervised, or
any OpenAI-compatible server upstream."""
