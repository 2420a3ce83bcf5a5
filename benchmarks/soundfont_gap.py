"""Where clapkit-small's GM-family errors come from: the instruments, or the SoundFont that plays them?

The offline GM task plays one loud, long note per GM program and pitch on TimGM6mb, a SoundFont the
corpus never uses. This renders the same note grid on other SoundFonts and scores zero-shot family
accuracy (the task's prompt, 15 families, chance 1/15) on each, with a 95 % bootstrap interval:

- the corpus's own SoundFont (Fluid R3, ``fluid-soundfont-gm``): the notes it trained on;
- any other SoundFonts given with ``--soundfont`` (e.g. csound's public-domain ``sf_GMbank.sf2``);
- TimGM6mb: the evaluation set itself (``eval_gm.jsonl``).

If the training SoundFont scores high and every other one low, the model has learned one
SoundFont's samples rather than the instruments, and more SoundFonts in training are the lever; if
all are low, the labels themselves are not learned.

    python benchmarks/soundfont_gap.py --data-root WORK/data [--model clapkit-small] \
        [--soundfont PATH.sf2 ...] [--fluid /usr/share/sounds/sf2/FluidR3_GM.sf2]

Needs tinysoundfont and the built evaluation sets; ``apt-get download`` + ``dpkg-deb -x`` gives a
SoundFont package's file without installing it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from measure import ZeroShot, manifest_accuracy, print_accuracies, zero_shot_accuracy

import clapkit
from clapkit.data.offline.gm import GM_FAMILIES, note_grid
from clapkit.data.offline.synth import NoteSpec
from clapkit.eval.tasks import TASKS

SAMPLE_RATE = 32000
EVAL_GRID = {"loudnesses": ("loud",), "lengths": ("long",)}  # as sources.read_eval_notes


def rendered_grid(soundfont: Path) -> tuple[list[np.ndarray], list[str]]:
    """The evaluation set's note grid played on ``soundfont``."""
    notes = note_grid(**EVAL_GRID)
    waves = [NoteSpec(str(soundfont), n.program, n.pitch, n.velocity, n.seconds).render(SAMPLE_RATE) for n in notes]
    return waves, [n.family for n in notes]


def accuracy(model, audio, families: list[str], sample_rate: int | None) -> ZeroShot:
    return zero_shot_accuracy(model, audio, families, list(GM_FAMILIES), TASKS["offline_gm_family"].template,
                              sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="the folder holding offline/eval_gm.jsonl")
    parser.add_argument("--model", default="clapkit-small")
    parser.add_argument("--fluid", default="/usr/share/sounds/sf2/FluidR3_GM.sf2", help="the corpus's SoundFont")
    parser.add_argument("--soundfont", action="append", default=[], help="another SoundFont (.sf2/.sf3)")
    args = parser.parse_args()

    model = clapkit.load(args.model)
    sets = []
    for label, path in [("Fluid R3 (in the corpus)", args.fluid)] + [(Path(p).name, p) for p in args.soundfont]:
        if not Path(path).is_file():
            parser.error(f"--soundfont {path}: no such file")
        started = time.perf_counter()
        waves, families = rendered_grid(Path(path))
        print(f"rendered {len(waves)} notes on {Path(path).name} in {time.perf_counter() - started:.1f} s")
        sets.append((label, len(waves), accuracy(model, waves, families, SAMPLE_RATE)))
    clips, held_out = manifest_accuracy(model, Path(args.data_root) / "offline" / "eval_gm.jsonl",
                                        list(GM_FAMILIES), TASKS["offline_gm_family"].template)
    sets.append(("TimGM6mb (the eval set)", clips, held_out))
    print(f"model {args.model}; prompt {TASKS['offline_gm_family'].template!r}; chance {1 / len(GM_FAMILIES):.3f}")
    print_accuracies("notes played on", sets, "eval")


if __name__ == "__main__":
    main()
