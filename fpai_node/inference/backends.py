"""Which backends a node runs, decided from its Settings."""

from pathlib import Path

from fpai_node.config import Settings
from fpai_node.inference.base import Backend
from fpai_node.inference.llamacpp import LlamaCppBackend, LocalModel
from fpai_node.inference.models import (
    bundled_model,
    check_model_file,
    parse_model_spec,
)
from fpai_node.inference.upstream import UpstreamBackend


def build_backends(settings: Settings, models_dir: Path) -> list[Backend]:
    """`models` entries ending in .gguf run in llama.cpp, other entries are vLLM models; each
    upstream URL is one backend. With nothing configured (and not --no-model) the node serves
    the bundled model, so a fresh `fpai-node start` answers right away."""
    local: list[LocalModel] = []
    backends: list[Backend] = []
    for text in settings.models:
        spec = parse_model_spec(text)
        if spec.is_gguf:
            model = spec.local()
            check_model_file(model)
            local.append(model)
        else:
            from fpai_node.inference.vllm import VllmBackend

            log_path = settings.home / "logs" / f"vllm-{spec.id.replace('/', '_')}.log"
            backends.append(VllmBackend(spec.ref, model_id=spec.id, log_path=log_path))
    for url in settings.upstreams:
        backends.append(UpstreamBackend(url, api_key=settings.upstream_api_key))
    if not settings.models and not settings.upstreams and not settings.no_model:
        local.append(bundled_model(models_dir))
    if local:
        backends.insert(
            0,
            LlamaCppBackend(
                local, context_length=settings.context_length, threads=settings.threads or None
            ),
        )
    return backends
