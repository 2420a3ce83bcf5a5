"""How much a model's zero-shot accuracy falls when its evaluation clips carry a noise floor.

The offline evaluation sets are clean (rendered drums and GM notes) or quiet home recordings (FSDD);
sound in the wild comes with hiss, hum and room tone. Each set is scored as it is and with white and
pink Gaussian noise added at 30, 20 and 10 dB SNR against each clip's RMS (the training noise bank's
white and pink rows, ``clapkit.train.augment.noise_bank``, at a fixed offset per clip: the same noise
for every model). Prints each accuracy with its 95 % bootstrap interval and its ratio to the clean
score.

    python benchmarks/noise_robustness.py --data-root WORK/data [--model clapkit-small] [--tasks offline_digits,...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from measure import print_accuracies, zero_shot_accuracy

import clapkit
from clapkit.audio import load_audio
from clapkit.eval.data import load_task_data
from clapkit.eval.tasks import TASKS
from clapkit.train.augment import NOISE_SLOPES, noise_at_snr, noise_bank

SAMPLE_RATE = 32000
COLOURS = {"white": NOISE_SLOPES.index(0.0), "pink": NOISE_SLOPES.index(1.0)}
SNRS_DB = (30, 20, 10)


def noisy(waves: list[np.ndarray], colour: str, snr_db: float) -> list[np.ndarray]:
    """Each wave with the bank's ``colour`` row added at ``snr_db``, from an offset fixed by its position."""
    longest = max(len(wave) for wave in waves)
    row = noise_bank(longest)[COLOURS[colour]]  # one bank for every length: building one takes FFTs
    starts = [(i * 7919) % (longest + 1) for i in range(len(waves))]
    return [noise_at_snr(wave, row[start:start + len(wave)], snr_db) for wave, start in zip(waves, starts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="the folder holding offline/eval_*.jsonl")
    parser.add_argument("--model", default="clapkit-small")
    parser.add_argument("--tasks", default="offline_digits,offline_gm_family,offline_drums")
    args = parser.parse_args()

    model = clapkit.load(args.model)
    print(f"model {args.model}")
    for name in args.tasks.split(","):
        task = TASKS[name]
        data = load_task_data(task, Path(args.data_root))
        waves = [load_audio(path, SAMPLE_RATE) for path in data.paths]
        truth = [data.classes[target] for target in data.targets]
        sets = []
        for colour in COLOURS:
            for snr in SNRS_DB:
                sets.append((f"{colour} noise, {snr} dB SNR", len(waves),
                             zero_shot_accuracy(model, noisy(waves, colour, snr), truth, data.classes, task.template,
                                                SAMPLE_RATE)))
        sets.append(("clean", len(waves), zero_shot_accuracy(model, waves, truth, data.classes, task.template,
                                                             SAMPLE_RATE)))
        print(f"\n{task.title}: chance {1 / len(data.classes):.3f}, prompt {task.template!r}")
        print_accuracies("clips with", sets, "clean", per_class=False)


if __name__ == "__main__":
    main()
