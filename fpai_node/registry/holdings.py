"""What REG-16's quotas count, kept beside the registry's tables as they change.

A member that is not a voter may keep MEMBER_PARAMETERS parameters (`member.<id>.` keys) and
MEMBER_SERVICES services (`<id>/` names) under its own name; while the registry has no voter,
anyone may do anything. Counting these by a pass over the tables made each such write cost time
in proportion to everything the registry holds, on every replica: 4.0 to 4.6 ms to apply a
learner's new parameter among 22,000 (1,000 learners with 20 each, as their reward digests,
fraud reports and ballots add up), 20 to 37 us with the counts (benchmarks/registry_apply.py).
Kept as counts, a quota check is a lookup. The counts are derived, never encoded: a snapshot's
reader counts them again. Pure."""

from collections.abc import Iterable
from dataclasses import dataclass

from immutables import Map

PARAMETER_PREFIX = "member."


def parameter_owner(key: str) -> str | None:
    """The member whose quota `key` counts towards: `<id>` of a `member.<id>.` key."""
    if not key.startswith(PARAMETER_PREFIX):
        return None
    end = key.find(".", len(PARAMETER_PREFIX))
    return key[len(PARAMETER_PREFIX) : end] if end > len(PARAMETER_PREFIX) else None


def service_owner(name: str) -> str | None:
    """The member whose quota the service `name` counts towards: `<id>` of an `<id>/` name."""
    end = name.find("/")
    return name[:end] if end > 0 else None


@dataclass(frozen=True, slots=True)
class Holdings:
    parameters: Map[str, int]  # owner -> parameters under its name
    services: Map[str, int]  # owner -> services under its name
    voters: int

    @classmethod
    def count(cls, parameters: Iterable[str], services: Iterable[str], voters: int) -> "Holdings":
        return cls(
            _tally(map(parameter_owner, parameters)), _tally(map(service_owner, services)), voters
        )

    def parameter(self, key: str, delta: int) -> "Holdings":
        """After a parameter `key` was added (1) or removed (-1)."""
        owner = parameter_owner(key)
        if owner is None:
            return self
        return Holdings(_moved(self.parameters, owner, delta), self.services, self.voters)

    def service(self, name: str, delta: int) -> "Holdings":
        """After a service `name` was added (1) or removed (-1)."""
        owner = service_owner(name)
        if owner is None:
            return self
        return Holdings(self.parameters, _moved(self.services, owner, delta), self.voters)

    def with_voters(self, voters: int) -> "Holdings":
        return Holdings(self.parameters, self.services, voters)


def _tally(owners: Iterable[str | None]) -> Map[str, int]:
    counts: dict[str, int] = {}
    for owner in owners:
        if owner is not None:
            counts[owner] = counts.get(owner, 0) + 1
    return Map(counts)


def _moved(counts: Map[str, int], owner: str, delta: int) -> Map[str, int]:
    held = counts.get(owner, 0) + delta
    return counts.set(owner, held) if held else counts.delete(owner)
