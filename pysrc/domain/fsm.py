"""A small table-driven finite-state machine shared by orders and positions.

Why not the ``transitions`` library the plan suggests: a table of plain rows is the whole
specification here. It can be printed as the documentation (``docs/state-machines.md`` is generated
from it), compared with the mission's table in a test, and checked in one dict lookup; there are no
callbacks, no dynamically added methods for mypy to miss, and nothing to learn beyond the table.

Vocabulary:

* a :class:`Rule` says which *event* moves an entity from which *source states* to which
  *target*. A rule whose ``target`` is ``None`` keeps the entity in its state: it records an update
  (an amendment, a fill detail, a funding payment) in the same history as the state changes, so
  replaying the history rebuilds every field, not only the state;
* :class:`TransitionTable` compiles the rules into ``{(state, event): target}`` and refuses
  anything else with :class:`InvalidTransition`;
* :class:`Transition` is the record of one applied event (from, to, event, time, metadata, and the
  entity version it produced). Histories of these are what gets persisted and replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


class DomainError(Exception):
    """Base of the errors the domain layer raises on purpose (callers catch these, never a bare
    ``Exception``)."""


class InvalidTransition(DomainError):
    """An event that the table, or the entity's own invariants, do not allow.

    Nothing has been changed when this is raised. Callers log it (``log_fields()`` gives the
    structured context) and reconcile; they never apply the change some other way.
    """

    def __init__(
        self,
        entity: str,
        entity_id: str,
        state: Enum,
        event: Enum | str,
        reason: str = "",
    ) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.state = state
        self.event = event
        self.reason = reason
        ev = event.value if isinstance(event, Enum) else event
        text = f"{entity} {entity_id!r}: {ev!s} is not allowed in state {state.value!s}"
        super().__init__(f"{text}: {reason}" if reason else text)

    def log_fields(self) -> dict[str, str]:
        """Structured context for the log line / audit record of the refusal."""
        ev = self.event.value if isinstance(self.event, Enum) else self.event
        return {
            "entity": self.entity,
            "entity_id": self.entity_id,
            "state": str(self.state.value),
            "event": str(ev),
            "reason": self.reason,
        }


class ForeignUpdate(DomainError):
    """A push whose ids or symbol belong to another entity (a routing bug upstream)."""


class ReplayError(DomainError):
    """A recorded history that does not fit the entity it is replayed onto (wrong order, a gap in
    versions, or a recorded target state that the table no longer produces)."""


class Metadata(Mapping[str, str]):
    """An immutable ``str -> str`` mapping: the metadata of one transition.

    Strings only, so a record is JSON (JSONB) as it stands and exact: a ``Decimal`` is stored as its
    ``str()``, which round-trips to the identical value including its exponent.
    """

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        data = dict(items)
        for k, v in data.items():
            if type(k) is not str or type(v) is not str:
                raise TypeError(f"transition metadata must map str to str, got {k!r}: {v!r}")
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # Direct versions of the Mapping mixins (which go through __getitem__ and a try/except):
    # apply() asks for several keys per event.
    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"Metadata({self._data!r})"

    def __getstate__(self) -> dict[str, str]:
        return self._data

    def __setstate__(self, state: dict[str, str]) -> None:
        self._data = state

    def as_dict(self) -> dict[str, str]:
        return dict(self._data)


EMPTY_METADATA = Metadata()


@dataclass(frozen=True, slots=True)
class Rule(Generic[S, E]):
    """One row of a transition table."""

    event: E
    sources: frozenset[S]
    target: S | None
    """``None``: the entity stays in its source state (a recorded update, not a move)."""
    why: str = ""
    """The reason the row exists, printed in the documentation."""
    origin: str = "mission"
    """``mission`` for rows of mission section 6, ``decided`` for sources the mission leaves open,
    ``extension`` for rows real exchange behaviour needs beyond the mission's list, ``lifecycle``
    for position rows the mission leaves to the implementation."""


@dataclass(frozen=True, slots=True)
class Transition(Generic[S, E]):
    """The record of one applied event. ``version`` is the entity's version after it (1 for the
    first transition), so a history is ordered and gap-free by construction."""

    version: int
    from_state: S
    to_state: S
    event: E
    at: datetime
    metadata: Metadata = EMPTY_METADATA

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (enum values, ISO time, metadata as a plain dict) for persistence."""
        return {
            "version": self.version,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "event": self.event.value,
            "at": self.at.isoformat(),
            "metadata": self.metadata.as_dict(),
        }


def transition_from_dict(data: Mapping[str, Any], states: type[S], events: type[E]) -> Transition[S, E]:
    """Inverse of :meth:`Transition.to_dict`."""
    at = data["at"]
    return Transition(
        version=int(data["version"]),
        from_state=states(data["from_state"]),
        to_state=states(data["to_state"]),
        event=events(data["event"]),
        at=at if isinstance(at, datetime) else datetime.fromisoformat(str(at)),
        metadata=Metadata(data.get("metadata") or {}),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TransitionTable(Generic[S, E]):
    """Rules compiled into one ``{(state, event): target}`` dict.

    Construction checks the table itself: every state and event is of the declared enums, no
    ``(state, event)`` pair appears twice, and a terminal state is never left (it may only be the
    source of a rule that stays, i.e. a recorded update such as a late fill detail).
    """

    name: str
    states: type[S]
    events: type[E]
    rules: Sequence[Rule[S, E]]
    terminal: frozenset[S]
    _next: dict[tuple[S, E], S] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nxt: dict[tuple[S, E], S] = {}
        for rule in self.rules:
            if not isinstance(rule.event, self.events):
                raise TypeError(f"{self.name}: {rule.event!r} is not a {self.events.__name__}")
            for src in rule.sources:
                if not isinstance(src, self.states):
                    raise TypeError(f"{self.name}: {src!r} is not a {self.states.__name__}")
                target = src if rule.target is None else rule.target
                if src in self.terminal and target is not src:
                    raise ValueError(
                        f"{self.name}: {rule.event.value} would leave terminal {src.value}"
                    )
                key = (src, rule.event)
                if key in nxt:
                    raise ValueError(f"{self.name}: ({src.value}, {rule.event.value}) defined twice")
                nxt[key] = target
        object.__setattr__(self, "_next", nxt)

    def target(self, state: S, event: E, entity_id: str = "") -> S:
        """The state ``event`` leads to from ``state``, or :class:`InvalidTransition`."""
        try:
            return self._next[(state, event)]
        except KeyError:
            raise InvalidTransition(
                self.name, entity_id, state, event, "not in the transition table"
            ) from None

    def is_legal(self, state: S, event: E) -> bool:
        return (state, event) in self._next

    def legal_events(self, state: S) -> tuple[E, ...]:
        return tuple(e for e in self.events if (state, e) in self._next)

    def pairs(self) -> dict[tuple[S, E], S]:
        """A copy of the compiled table (for tests and documentation)."""
        return dict(self._next)

    def is_terminal(self, state: S) -> bool:
        return state in self.terminal

    # ---- documentation -----------------------------------------------------------------------

    def markdown_rules(self) -> str:
        """The rules as a Markdown table, in table order (the form the mission uses)."""
        order = list(self.states)
        lines = ["| event | from | to | origin | why |", "|---|---|---|---|---|"]
        for rule in self.rules:
            srcs = ", ".join(s.value for s in sorted(rule.sources, key=order.index))
            to = "(stays)" if rule.target is None else rule.target.value
            why = " ".join(rule.why.split()).replace("|", "\\|")
            lines.append(f"| `{rule.event.value}` | {srcs} | {to} | {rule.origin} | {why} |")
        return "\n".join(lines) + "\n"

    def markdown_matrix(self) -> str:
        """State x event matrix: the target of every legal pair, ``·`` for a refused one."""
        events = list(self.events)
        head = "| state \\ event | " + " | ".join(f"`{e.value}`" for e in events) + " |"
        lines = [head, "|---|" + "---|" * len(events)]
        for s in self.states:
            label = f"**{s.value}** (terminal)" if s in self.terminal else f"**{s.value}**"
            cells = []
            for e in events:
                t = self._next.get((s, e))
                cells.append("·" if t is None else ("=" if t is s else t.value))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


Entity = TypeVar("Entity")


def copy_entity(entity: Entity) -> Entity:
    """An independent copy of a dataclass entity with a ``history`` list: fields are shared (they
    are immutable values), the history list is copied (its records are immutable)."""
    cls = type(entity)
    clone = cls.__new__(cls)
    for f in fields(entity):  # type: ignore[arg-type]
        setattr(clone, f.name, getattr(entity, f.name))
    clone.history = list(entity.history)  # type: ignore[attr-defined]
    return clone


def replay_onto(entity: Entity, transitions: Iterable[Any], label: str) -> Entity:
    """Re-apply recorded transitions to ``entity`` (a fresh copy of the initial snapshot) through
    its own ``apply``, so a history the current table would refuse, or one out of order, raises
    :class:`ReplayError` (``label`` names the entity) instead of producing a state the code could
    never have reached. Returns ``entity``."""
    e: Any = entity
    for t in transitions:
        if t.version != e.version + 1 or t.from_state is not e.state:
            raise ReplayError(
                f"{label}: record v{t.version} from {t.from_state.value} "
                f"does not follow v{e.version} in {e.state.value}"
            )
        try:
            got = e.apply(t.event, t.at, t.metadata)
        except InvalidTransition as exc:
            raise ReplayError(f"{label}: v{t.version} refused: {exc}") from exc
        if got != t:
            raise ReplayError(f"{label}: v{t.version} led to {got.to_state.value}, recorded {t.to_state.value}")
    return entity
