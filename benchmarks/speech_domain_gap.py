"""Where clapkit-small's spoken-digit errors come from: the voices, or matching the prompts?

Zero-shot accuracy on the ten English digits with the offline digits task's prompt ("this is the
sound of someone saying seven"), on four sets of the same words:

- **espeak-ng, held out:** renditions the corpus does not hold (numbers 150 and on of each digit:
  other voice, rate and pitch draws; a draw equal to a corpus clip is left out), rendered now;
- **flite, held out** (where the ``flite`` program is installed): a second synthesizer's four
  English voices at two rates and three pitches, less any draw the corpus's ``flite`` source holds;
- **Festival, held out** (where ``text2wave`` and its two English voices are installed): a third
  synthesizer's diphone voice (recordings of a real speaker's diphones) at two rates and three
  pitches and its HTS voice at three rates, less any draw the optional ``festival`` source holds;
- **real:** FSDD's recordings (the offline digits task, ``eval_digits.jsonl``), also each scaled to
  a peak of -1 dBFS (as loud as the corpus's voices) and made 20 dB quieter: a model that reads
  level as content changes its answers with the level.

If the synthetic sets score high and the real one low, the text side matches digit words and the
gap is in the voices; if all are low, it is in the prompts' alignment. Prints each accuracy with a
95 % bootstrap interval, and each set's ratio to the real one.

    python benchmarks/speech_domain_gap.py --data-root WORK/data [--model clapkit-small] [--per-digit 30]

Needs espeak-ng (``apt-get install espeak-ng``; flite and Festival are optional) and the built evaluation sets.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from measure import ZeroShot, print_accuracies, zero_shot_accuracy

import clapkit
from clapkit.audio import load_audio
from clapkit.data.manifest import read_manifest, resolve
from clapkit.data.offline.licences import CopyrightFile
from clapkit.data.offline.speech import (
    ENGLISH,
    FESTIVAL_GENDERS,
    FLITE_VOICES,
    ONES,
    Utterance,
    festival_items,
    flite_items,
    speech_items,
)
from clapkit.data.offline.synth import FestivalSpec, FliteSpec, MissingTool
from clapkit.eval.tasks import TASKS

DIGITS = list(ONES[:10])
CORPUS_RENDITIONS = 150  # renditions per English digit in the corpus (speech.utterances)


def held_out_renditions(per_digit: int) -> tuple[list[np.ndarray], list[str]]:
    """``per_digit`` espeak-ng renditions of each digit that the corpus does not hold."""
    def items(first: int, count: int):
        spoken = [Utterance(word, f"the number {word}", "number", ENGLISH, count) for word in DIGITS]
        return speech_items(Path("/"), CopyrightFile((), "GPL-3+"), spoken, first_rendition=first)[0]

    in_corpus = {item.source.identity() for item in items(0, CORPUS_RENDITIONS)}
    waves, words = [], []
    for item in items(CORPUS_RENDITIONS, per_digit):
        if item.source.identity() not in in_corpus:
            waves.append(item.source.render(16000))
            words.append(item.extra["words"])
    return waves, words


def flite_renditions() -> tuple[list[np.ndarray], list[str]]:
    """Each digit in each flite voice at two rates and three pitches (Hz), less the corpus's draws."""
    in_corpus = {item.source.identity() for item in flite_items("")}
    specs = [FliteSpec(word, voice, stretch, pitch) for voice in sorted(FLITE_VOICES) for stretch in (0.9, 1.2)
             for pitch in (90, 130, 180) for word in DIGITS]
    held_out = [spec for spec in specs if spec.identity() not in in_corpus]
    return [spec.render(16000) for spec in held_out], [spec.text for spec in held_out]


def festival_renditions() -> tuple[list[np.ndarray], list[str]]:
    """Each digit in Festival's diphone voice at two rates and three pitches (Hz) and in its HTS voice
    at three rates, less the corpus's draws."""
    in_corpus = {item.source.identity() for item in festival_items(dict.fromkeys(FESTIVAL_GENDERS, ""))}
    voices = [("ked_diphone", stretch, pitch) for stretch in (0.85, 1.2) for pitch in (95, 125, 160)]
    voices += [("cmu_us_slt_arctic_hts", stretch, 0) for stretch in (0.85, 1.05, 1.2)]
    specs = [FestivalSpec(word, voice, stretch, pitch) for voice, stretch, pitch in voices for word in DIGITS]
    held_out = [spec for spec in specs if spec.identity() not in in_corpus]
    return [spec.render(16000) for spec in held_out], [spec.text for spec in held_out]


def at_levels(manifest: Path, sample_rate: int) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """The manifest's clips peak-normalised to -1 dBFS, 20 dB quieter and as recorded (decoded once),
    and their words."""
    clips = read_manifest(manifest)
    waves = [load_audio(resolve(manifest, clip), sample_rate) for clip in clips]
    peak = 10 ** (-1 / 20)
    levels = {"real, peak -1 dBFS": [w * np.float32(peak / max(float(np.abs(w).max()), 1e-6)) for w in waves],
              "real, 20 dB quieter": [w * np.float32(0.1) for w in waves],
              "real (FSDD)": waves}
    return levels, [clip.labels[0] for clip in clips]


def accuracy(model, audio, words: list[str], sample_rate: int | None) -> ZeroShot:
    return zero_shot_accuracy(model, audio, words, DIGITS, TASKS["offline_digits"].template, sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="the folder holding offline/eval_digits.jsonl")
    parser.add_argument("--model", default="clapkit-small")
    parser.add_argument("--per-digit", type=int, default=30, help="held-out synthetic renditions per digit")
    args = parser.parse_args()

    model = clapkit.load(args.model)
    started = time.perf_counter()
    waves, words = held_out_renditions(args.per_digit)
    print(f"rendered {len(waves)} held-out espeak-ng clips in {time.perf_counter() - started:.1f} s")

    sets = [("espeak-ng, held out", len(words), accuracy(model, waves, words, 16000))]
    if shutil.which("flite"):
        waves, words = flite_renditions()
        sets.append(("flite, held out", len(words), accuracy(model, waves, words, 16000)))
    else:
        print("flite is not installed (apt-get install flite): its set is left out")
    try:
        waves, words = festival_renditions()
        sets.append(("Festival, held out", len(words), accuracy(model, waves, words, 16000)))
    except MissingTool as e:
        print(f"{e}: the Festival set is left out")
    levels, words = at_levels(Path(args.data_root) / "offline" / "eval_digits.jsonl", 32000)
    sets += [(name, len(words), accuracy(model, waves, words, 32000)) for name, waves in levels.items()]
    print(f"model {args.model}; prompt {TASKS['offline_digits'].template!r}; chance 0.100")
    print_accuracies("set", sets, "real")


if __name__ == "__main__":
    main()
