"""All of a node's backends behind one lookup by model id, each model with its admission queue."""

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric

from fpai_node.errors import ConfigError, FpaiError
from fpai_node.inference.admission import Admission
from fpai_node.inference.base import Backend, InferenceError, ModelCard, ModelNotFound
from fpai_node.service import Service

log = structlog.get_logger("fpai.inference")


@dataclass(frozen=True, slots=True)
class ServedModel:
    card: ModelCard
    backend: Backend
    admission: Admission


class InferenceService(Service):
    name = "inference"

    def __init__(self, backends: Sequence[Backend], *, max_waiting: int) -> None:
        self._backends = list(backends)
        self._max_waiting = max_waiting
        self._models: dict[str, ServedModel] = {}

    async def start(self) -> None:
        """Start every backend; if one fails, stop those already started and re-raise."""
        started: list[Backend] = []
        try:
            for backend in self._backends:
                await backend.start()
                started.append(backend)
                for card in backend.models():
                    if card.id in self._models:
                        raise ConfigError(f"model id {card.id!r} is served by two backends")
                    self._models[card.id] = ServedModel(
                        card, backend, Admission(card.id, card.capacity, self._max_waiting)
                    )
        except BaseException as exc:
            await asyncio.gather(*(b.close() for b in started), return_exceptions=True)
            self._models.clear()
            if isinstance(exc, InferenceError):  # e.g. vLLM missing, upstream down: one line
                raise FpaiError(f"cannot start inference: {exc}") from None
            raise

    async def stop(self, leave: bool) -> None:
        await self.close()

    async def close(self) -> None:
        self._models.clear()
        results = await asyncio.gather(*(b.close() for b in self._backends), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("backend did not close cleanly", error=str(result))

    def models(self) -> list[ServedModel]:
        return list(self._models.values())

    def serves(self, model: str) -> bool:
        return model in self._models

    def get(self, model: str) -> ServedModel:
        try:
            return self._models[model]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFound(f"model {model!r} is not served here (models: {known})") from None

    def status_sections(self) -> Mapping[str, object]:
        """`models`: each local model with its admission queue's counts."""
        return {
            "models": [
                {
                    "id": served.card.id,
                    "backend": served.card.backend,
                    "context_length": served.card.context_length,
                    "running": served.admission.running,
                    "waiting": served.admission.waiting,
                }
                for served in self.models()
            ]
        }

    def metrics(self) -> Iterable[Metric]:
        running = GaugeMetricFamily(
            "fpai_model_requests_running",
            "Generations running now, per local model.",
            labels=["model"],
        )
        waiting = GaugeMetricFamily(
            "fpai_model_requests_waiting",
            "Requests waiting in the admission queue now, per local model.",
            labels=["model"],
        )
        slots = GaugeMetricFamily(
            "fpai_model_slots",
            "Generations a local model runs at once (more wait in its queue).",
            labels=["model"],
        )
        for served in self.models():
            running.add_metric([served.card.id], served.admission.running)
            waiting.add_metric([served.card.id], served.admission.waiting)
            slots.add_metric([served.card.id], served.card.capacity)
        return (running, waiting, slots)
