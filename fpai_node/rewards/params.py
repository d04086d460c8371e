"""The federation's reward parameters, read from the registry (specs/0010-rewards.md RWD-4). Pure.

A value of the wrong type or out of range counts as absent, so a voter's typo never turns
rewards into something nobody meant: absent rates and an absent cap pay nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from fpai_node.wire import codec

DEFAULT_EPOCH_S = 3_600  # an hour: digests and proposals stay few, an operator waits little
EPOCH_S_RANGE = (10, 604_800)  # 10 s for tests and demos, a week at most
DEFAULT_SETTLE_S = 300  # acknowledgements are delivered within 10 minutes, most in a second
SETTLE_S_RANGE = (1, 86_400)
DEFAULT_SPOT_PPM = 20_000  # 2%: a server cheating on 100 answers an epoch is caught 87% of times
PPM = 1_000_000
DEFAULT_FRAUD_QUORUM = 1  # the one checker a small federation has
FRAUD_QUORUM_RANGE = (1, 7)
RATE_TOKENS = 1_000_000  # a rate is per million tokens, as API prices are
WEIGHTS_BYTES = 32  # SHA-256


@dataclass(frozen=True, slots=True)
class Rate:
    weights: bytes  # the SHA-256 of the weights file the rate pays for
    prompt: int  # units of the reward token per RATE_TOKENS prompt tokens
    completion: int


@dataclass(frozen=True, slots=True)
class RewardParams:
    epoch_s: int = DEFAULT_EPOCH_S
    settle_s: int = DEFAULT_SETTLE_S
    rates: Mapping[str, Rate] = field(default_factory=dict)  # by model id
    requester_cap: int = 0
    spot_ppm: int = DEFAULT_SPOT_PPM
    fraud_quorum: int = DEFAULT_FRAUD_QUORUM

    @property
    def epoch_ms(self) -> int:
        return self.epoch_s * 1000

    def epoch_of(self, at_ms: int) -> int:
        return at_ms // self.epoch_ms

    def end_ms(self, epoch: int) -> int:
        return (epoch + 1) * self.epoch_ms

    def deadline_ms(self, epoch: int) -> int:
        return self.end_ms(epoch) + self.settle_s * 1000

    def commit_from_ms(self, epoch: int) -> int:
        """RWD-6: a digest is committed after the end plus half the settling time."""
        return self.end_ms(epoch) + self.settle_s * 500

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, codec.Value]) -> "RewardParams":
        epoch_s = _uint(parameters.get("rewards.epoch_s"), EPOCH_S_RANGE) or DEFAULT_EPOCH_S
        settle_s = _uint(parameters.get("rewards.settle_s"), (SETTLE_S_RANGE[0], epoch_s))
        spot = _uint(parameters.get("rewards.spot_ppm"), (0, PPM))
        quorum = _uint(parameters.get("rewards.fraud_quorum"), FRAUD_QUORUM_RANGE)
        rates = {
            key.removeprefix("rewards.rate."): rate
            for key, value in parameters.items()
            if key.startswith("rewards.rate.") and (rate := _rate(value)) is not None
        }
        return cls(
            epoch_s=epoch_s,
            settle_s=min(DEFAULT_SETTLE_S, epoch_s) if settle_s is None else settle_s,
            rates=rates,
            requester_cap=_uint(parameters.get("rewards.requester_cap"), (0, 2**64 - 1)) or 0,
            spot_ppm=DEFAULT_SPOT_PPM if spot is None else spot,
            fraud_quorum=quorum or DEFAULT_FRAUD_QUORUM,
        )


def rate_value(rate: Rate) -> codec.Value:
    return {"completion": rate.completion, "prompt": rate.prompt, "weights": rate.weights}


def _uint(value: codec.Value, bounds: tuple[int, int]) -> int | None:
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        return None
    return value


def _rate(value: codec.Value) -> Rate | None:
    if not isinstance(value, dict) or value.keys() != {"completion", "prompt", "weights"}:
        return None
    weights, prompt, completion = value["weights"], value["prompt"], value["completion"]
    if type(weights) is not bytes or len(weights) != WEIGHTS_BYTES:
        return None
    if _uint(prompt, (0, 2**64 - 1)) is None or _uint(completion, (0, 2**64 - 1)) is None:
        return None
    return Rate(weights, prompt, completion)  # type: ignore[arg-type]
