"""The audio-pretraining task mixture: every manifest field a clip offers becomes a question with a
text answer; each clip draws one by weight, deterministically."""
from __future__ import annotations

import numpy as np
import pytest

from clapkit.errors import UsageError
from clapkit.train.tasks import TASKS, TaskMixture

NOTE = {"captions": ["a flute playing a note", "one flute note"], "labels": ["flute"], "family": "pipe",
        "instrument": "flute", "pitch": 61, "velocity": 112, "duration": 2.0,
        "source": "debian:fluid-soundfont-gm@3.1-5.3"}
SPEECH = {"captions": ["a woman saying seven"], "labels": ["speech"], "words": "seven", "language": "English",
          "gender": "female", "voice": "en+f4", "duration": 0.7, "source": "debian:espeak-ng-data@1.52"}


def answers(record: dict, spec: str | None = None) -> dict[str, str]:
    return {q.task: q.answer for q in TaskMixture.parse(spec).questions(record)}


def test_every_field_a_clip_offers_becomes_a_question():
    assert answers(NOTE) == {"caption": "a flute playing a note", "label": "flute", "family": "pipe",
                             "instrument": "flute", "note": "C sharp 4", "dynamics": "loudly",
                             "source": "fluid-soundfont-gm", "duration": "a few seconds"}
    assert answers(SPEECH) == {"caption": "a woman saying seven", "label": "speech", "words": "seven",
                               "language": "English", "gender": "female", "voice": "en+f4",
                               "source": "espeak-ng-data", "duration": "under a second"}


def test_empty_fields_and_wrong_types_ask_nothing():
    record = {"captions": ["x"], "gender": "", "pitch": "60", "velocity": True, "labels": []}
    assert answers(record) == {"caption": "x"}


def test_a_spec_chooses_tasks_and_weights():
    mixture = TaskMixture.parse("caption=2, note , family=0.5")
    assert mixture.weights == {"caption": 2.0, "note": TASKS["note"].weight, "family": 0.5}
    assert set(answers(NOTE, "note,family")) == {"note", "family"}
    assert answers(SPEECH, "note,family") == {}


@pytest.mark.parametrize("spec, message", [("colour", "unknown task 'colour'"), ("note=x", "not a number"),
                                           ("note=0", "above 0"), (" , ", "names no task")])
def test_bad_specs_are_refused_by_name(spec, message):
    with pytest.raises(UsageError, match=message):
        TaskMixture.parse(spec)


def test_draws_are_seeded_and_follow_the_weights():
    mixture = TaskMixture.parse("caption=3,family=1")
    draws = [mixture.draw(NOTE, np.random.default_rng([0, 0, i])).task for i in range(2000)]
    again = [mixture.draw(NOTE, np.random.default_rng([0, 0, i])).task for i in range(2000)]
    assert draws == again
    assert 0.71 < draws.count("caption") / len(draws) < 0.79  # 3 / (3 + 1)
    assert mixture.draw(SPEECH, np.random.default_rng(0)).task == "caption"  # the only one it can answer
    assert TaskMixture.parse("family").draw(SPEECH, np.random.default_rng(0)) is None


def test_the_summary_counts_clips_and_expected_shares():
    rows = {task: (clips, share) for task, clips, share in TaskMixture.parse("caption=3,family=1,words")
            .summary([NOTE, SPEECH])}
    assert rows["caption"] == (2, pytest.approx((0.75 + 3 / 5) / 2))
    assert rows["family"] == (1, pytest.approx(0.25 / 2))
    assert rows["words"] == (1, pytest.approx(0.4 / 2))
