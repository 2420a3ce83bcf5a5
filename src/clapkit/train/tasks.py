"""The task mixture of audio pretraining (``clapkit train --stage audio-pretrain``): every field a
clip's manifest record offers becomes a question with a text answer, as in Pengi and the paper's
HTSAT-22.

A task is a prompt plus a rule that reads its answer from the record (None where the clip has no
such field). Each training clip draws one of the tasks it can answer, with probability
proportional to the task's weight; the draw comes from the clip's own seeded generator, so the
mixture is as deterministic and resumable as the crops.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:  # numpy is imported where a draw needs it: `clapkit train --help` lists the tasks quickly
    import numpy as np

Record = Mapping[str, object]
NOTE_NAMES = ("C", "C sharp", "D", "D sharp", "E", "F", "F sharp", "G", "G sharp", "A", "A sharp", "B")


@dataclass(frozen=True)
class Task:
    prompt: str
    answer: Callable[[Record, np.random.Generator | None], str | None]
    weight: float = 1.0  # its default share in the mixture


def _text(key: str) -> Callable[[Record, np.random.Generator | None], str | None]:
    def answer(record: Record, rng: np.random.Generator | None) -> str | None:
        value = record.get(key)
        return None if value is None else str(value).strip() or None
    return answer


def _caption(record: Record, rng: np.random.Generator | None) -> str | None:
    captions = record.get("captions") or []
    if not captions:
        return None
    return captions[int(rng.integers(len(captions)))] if rng is not None and len(captions) > 1 else captions[0]


def _labels(record: Record, rng: np.random.Generator | None) -> str | None:
    return ", ".join(record.get("labels") or []) or None


def _note(record: Record, rng: np.random.Generator | None) -> str | None:
    pitch = record.get("pitch")
    if not isinstance(pitch, int) or isinstance(pitch, bool):
        return None
    return f"{NOTE_NAMES[pitch % 12]} {pitch // 12 - 1}"  # MIDI 60 is "C 4"


def _classed(key: str, classes: Sequence[tuple[float, str]]) -> Callable[[Record, np.random.Generator | None], str | None]:
    """A number read as the first class whose upper bound it does not exceed."""
    def answer(record: Record, rng: np.random.Generator | None) -> str | None:
        value = record.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        return next(name for bound, name in classes if value <= bound)
    return answer


def _spoken(record: Record, rng: np.random.Generator | None) -> str | None:
    for key in ("words", "word", "transcript"):
        if record.get(key):
            return str(record[key])
    return None


def _source(record: Record, rng: np.random.Generator | None) -> str | None:
    source = str(record.get("source") or "")
    return source.split(":", 1)[-1].split("@", 1)[0] or None  # "debian:0ad-data@0.27" -> "0ad-data"


INF = float("inf")
TASKS: dict[str, Task] = {
    "caption": Task("describe the sound", _caption, 3.0),
    "label": Task("what sound is this?", _labels, 2.0),
    "family": Task("which instrument family is playing?", _text("family")),
    "instrument": Task("which instrument is playing?", _text("instrument")),
    "note": Task("which note is played?", _note),
    "dynamics": Task("how hard is the note played?", _classed("velocity", ((64, "softly"), (INF, "loudly")))),
    "drum_kit": Task("which drum kit is this?", _text("kit")),
    "words": Task("what is said?", _spoken, 2.0),
    "language": Task("which language is spoken?", _text("language")),
    "gender": Task("is the voice a man's or a woman's?", _text("gender")),
    "voice": Task("which voice is speaking?", _text("voice"), 0.5),
    "collection": Task("which collection is the tune from?", _text("collection")),
    "tune_type": Task("what kind of tune is this?", _text("tune_type")),
    "tempo": Task("how fast is it played?", _classed("tempo", ((0.9, "slowly"), (1.1, "at a moderate pace"),
                                                              (INF, "fast")))),
    "register": Task("in which register is it played?", _classed("transpose", ((-1, "low"), (0, "middle"),
                                                                              (INF, "high")))),
    "source": Task("which collection of sounds is this from?", _source, 0.5),
    "duration": Task("how long is the sound?", _classed("duration", ((1.0, "under a second"), (5.0, "a few seconds"),
                                                                     (10.0, "up to ten seconds"),
                                                                     (INF, "longer than ten seconds"))), 0.5),
}


@dataclass(frozen=True)
class Question:
    task: str
    prompt: str
    answer: str


class TaskMixture:
    """The tasks in use and their weights; ``draw`` picks one question for a clip."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)

    @classmethod
    def parse(cls, spec: str | None) -> TaskMixture:
        """``None``: every task at its default weight; else ``"caption=3,label,family=0.5"`` (a task
        without ``=`` keeps its default weight)."""
        if spec is None:
            return cls({name: task.weight for name, task in TASKS.items()})
        weights = {}
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            name, has_weight, weight = part.partition("=")
            name = name.strip()
            if name not in TASKS:
                raise UsageError(f"--tasks: unknown task {name!r}; known: {', '.join(TASKS)}")
            try:
                weights[name] = float(weight) if has_weight else TASKS[name].weight
            except ValueError:
                raise UsageError(f"--tasks: weight of {name!r} is not a number: {weight!r}") from None
            if not weights[name] > 0:
                raise UsageError(f"--tasks: weight of {name!r} must be above 0, got {weight}")
        if not weights:
            raise UsageError("--tasks: names no task")
        return cls(weights)

    def questions(self, record: Record, rng: np.random.Generator | None = None) -> list[Question]:
        """Every question of the mixture that ``record`` can answer (captions: a drawn one, else the first)."""
        found = []
        for name in self.weights:
            task = TASKS[name]
            answer = task.answer(record, rng)
            if answer:
                found.append(Question(name, task.prompt, answer))
        return found

    def draw(self, record: Record, rng: np.random.Generator) -> Question | None:
        """One question for ``record``, chosen by weight among those it can answer; None if none."""
        found = self.questions(record, rng)
        if not found:
            return None
        weights = [self.weights[q.task] for q in found]
        return found[int(rng.choice(len(found), p=[w / sum(weights) for w in weights]))]

    def summary(self, records: Sequence[Record]) -> list[tuple[str, int, float]]:
        """Per task: how many clips can answer it and its expected share of the drawn questions."""
        clips, share = Counter(), Counter()
        for record in records:
            names = [q.task for q in self.questions(record)]
            total = sum(self.weights[n] for n in names)
            for name in names:
                clips[name] += 1
                share[name] += self.weights[name] / total
        n = max(1, len(records))
        return [(name, clips[name], share[name] / n) for name in self.weights]
