"""The benchmark's task registry: the paper's 26 zero-shot tasks (Elizalde et al. 2023, Table 2) and the
offline tasks anyone can run, each with its data, protocol, prompt, metrics and the paper's figures.

Protocol, as the paper and its code: test sets only (k-fold datasets: every fold is test); prompts
"this is the sound of {}" unless a task says otherwise; single-label tasks take the softmax over the
prompts (accuracy: the top class), multi-label tasks score every class (mAP). A label becomes prompt
text by ``label_text`` (underscores to spaces unless a task maps it otherwise). Where the paper does
not define something, the entry's ``note`` says which definition is used and why.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

TEMPLATE = "this is the sound of {}"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
RETRIEVAL_METRICS = ("R@1", "R@5", "R@10", "mAP@10")


def spaced(label: str) -> str:
    return label.replace("_", " ")


def midi_note(pitch: str) -> str:
    """MIDI pitch number -> scientific note name (60 -> C4)."""
    number = int(pitch)
    return f"{NOTE_NAMES[number % 12]}{number // 12 - 1}"


@dataclass(frozen=True)
class Task:
    """One benchmark task.

    ``dataset``: a ``clapkit.data.adapters`` name read from ``<data-root>/<folder>``, or ``offline``:
    the manifest ``<data-root>/<folder>/<manifest>`` written by ``clapkit data build``.
    ``splits``: the test clips (None: every clip, as for k-fold and unsplit datasets).
    ``label``: where a clip's label(s) come from: ``labels`` (all its labels), ``first`` or
    ``second`` (one of them), or an extra field of the manifest (``pitch``, ``qualities``…).
    ``paper`` / ``paper_2022``: metric -> the paper's figure for CLAP 2023 / 2022.
    """

    name: str
    title: str
    kind: Literal["single", "multi", "retrieval", "caption"]
    dataset: str
    folder: str
    metrics: tuple[str, ...]
    paper: dict[str, float] = field(default_factory=dict)
    paper_2022: dict[str, float] = field(default_factory=dict)
    splits: tuple[str, ...] | None = None
    label: str = "first"
    label_text: Callable[[str], str] = spaced
    template: str = TEMPLATE
    manifest: str = ""
    direction: Literal["a2t", "t2a", ""] = ""
    options: dict = field(default_factory=dict)
    note: str = ""
    offline: bool = False

    @property
    def primary(self) -> str:
        return self.metrics[0]


def _single(name, title, dataset, folder, paper=None, paper_2022=None, **kw) -> Task:
    return Task(name, title, "single", dataset, folder, ("accuracy",), {"accuracy": paper} if paper else {},
                {"accuracy": paper_2022} if paper_2022 else {}, **kw)


def _multi(name, title, dataset, folder, paper=None, paper_2022=None, metric="mAP", **kw) -> Task:
    metrics = (metric, "mAP") if metric != "mAP" else ("mAP",)
    return Task(name, title, "multi", dataset, folder, metrics, {metric: paper} if paper else {},
                {metric: paper_2022} if paper_2022 else {}, **kw)


def _retrieval(name, title, dataset, folder, direction, paper, splits, **kw) -> Task:
    return Task(name, title, "retrieval", dataset, folder, RETRIEVAL_METRICS, paper, splits=splits,
                direction=direction, label="captions", **kw)


_CAPTION_NOTE = ("CIDEr-D, SPICE and SPIDEr from the aac-metrics package over the test clips' five captions; "
                 "needs a captioning model (msclap-clapcap)")

TASKS: dict[str, Task] = {t.name: t for t in [
    # ---- the paper's Table 2 (CLAP 2023; 2022 where the paper gives it) ----------------------------
    _single("esc50", "ESC50", "esc50", "ESC-50", 0.939, 0.826),
    _multi("fsd50k", "FSD50K", "fsd50k", "FSD50K", 0.485, 0.302, splits=("eval",), label="labels"),
    _single("urbansound8k", "UrbanSound8K", "urbansound8k", "UrbanSound8K", 0.823, 0.732),
    _multi("dcase2017_task4", "DCASE17 Task 4", "dcase2017_task4", "DCASE2017-task4", 0.466, 0.300, metric="F1",
           splits=("evaluation",), label="labels",
           note="F1 as DCASE 2017 task 4 subtask A (instance-based micro F1); the paper gives no decision rule for "
                "zero-shot scores, so each clip is tagged with its top class; mAP is reported beside it"),
    _multi("audioset", "AudioSet", "audioset", "AudioSet", 0.102, splits=("eval",), label="labels"),
    _single("vocalsound", "VocalSound", "vocalsound", "VocalSound", 0.800, 0.495, splits=("test",)),
    _single("sesa", "SESA", "sesa", "SESA", 0.650, splits=("test",)),
    _multi("esc50_actions", "ESC50-Actions", "esc50_actions", "ESC-50", 0.509, label="labels",
           note="labels: the actions rated >= 2.0 on average (the adapter's rule; the paper gives none)"),
    _single("tut2017", "TUT2017", "tut2017", "TUT2017", 0.538, 0.296, splits=("evaluation",)),
    _single("gtzan_music_speech", "GTZAN Music Speech", "gtzan_music_speech", "GTZAN-music-speech", 0.992),
    _single("gtzan_genres", "GTZAN Genres", "gtzan_genres", "GTZAN", 0.584),
    _single("nsynth_pitch", "NSynth pitch", "nsynth", "NSynth", 0.444, splits=("test",), label="pitch",
            label_text=midi_note, template="this is the sound of the musical note {}",
            note="label text: the MIDI pitch as a note name (60 -> C4)"),
    _single("nsynth_velocity", "NSynth velocity", "nsynth", "NSynth", 0.222, splits=("test",), label="velocity",
            template="this is the sound of a note played at velocity {}"),
    _multi("nsynth_qualities", "NSynth qualities", "nsynth", "NSynth", 0.489, splits=("test",), label="qualities"),
    _single("nsynth_family", "NSynth instrument family", "nsynth", "NSynth", 0.479, splits=("test",)),
    _single("beijing_opera", "Beijing Opera", "beijing_opera", "BeijingOpera", 0.466),
    _single("crema_d", "CREMA-D", "crema_d", "CREMA-D", 0.300, 0.178),
    _single("ravdess", "RAVDESS", "ravdess", "RAVDESS", 0.315, 0.160),
    _single("speech_commands", "Speech Commands", "speech_commands", "SpeechCommands", 0.164, 0.106,
            splits=("test",)),
    _single("libricount", "LibriCount10", "libricount", "LibriCount10", 0.246, 0.179, splits=("test",),
            template="this is the sound of {} people speaking", note="label text: the speaker count"),
    Task("audiocaps_caption", "AudioCaps captioning", "caption", "audiocaps", "AudioCaps",
         ("SPIDEr", "CIDEr-D", "SPICE"), {"SPIDEr": 0.455}, splits=("test",), label="captions", note=_CAPTION_NOTE),
    Task("clotho_caption", "Clotho captioning", "caption", "clotho", "Clotho", ("SPIDEr", "CIDEr-D", "SPICE"),
         {"SPIDEr": 0.271}, splits=("evaluation",), label="captions", note=_CAPTION_NOTE),
    _retrieval("audiocaps_a2t", "AudioCaps audio→text", "audiocaps", "AudioCaps", "a2t",
               {"R@1": 0.425, "mAP@10": 0.319}, ("test",)),
    _retrieval("audiocaps_t2a", "AudioCaps text→audio", "audiocaps", "AudioCaps", "t2a",
               {"R@1": 0.356, "mAP@10": 0.510}, ("test",)),
    _retrieval("clotho_a2t", "Clotho audio→text", "clotho", "Clotho", "a2t", {"R@1": 0.229, "mAP@10": 0.155},
               ("evaluation",)),
    _retrieval("clotho_t2a", "Clotho text→audio", "clotho", "Clotho", "t2a", {"R@1": 0.157, "mAP@10": 0.257},
               ("evaluation",)),
    # ---- offline: the sets `clapkit data build eval|offline --out <data-root>/offline` writes --------
    _single("offline_drums", "Drum kit instruments (offline)", "offline", "offline", manifest="eval_drums.jsonl",
            label="second", offline=True, note="hydrogen-drumkits hits; label: the instrument name"),
    _single("offline_gm_family", "GM instrument families (offline)", "offline", "offline",
            manifest="eval_gm.jsonl", offline=True, note="TimGM6mb soundfont notes; label: the GM family"),
    _single("offline_gm_instrument", "GM instruments (offline)", "offline", "offline", manifest="eval_gm.jsonl",
            label="second", offline=True, note="TimGM6mb soundfont notes; label: the GM program name"),
    _single("offline_digits", "Spoken digits (offline, FSDD)", "offline", "offline", manifest="eval_digits.jsonl",
            template="this is the sound of someone saying {}", offline=True),
    _retrieval("offline_a2t", "Offline corpus audio→text", "offline", "offline", "a2t", {}, ("test",),
               manifest="manifest.jsonl", offline=True),
    _retrieval("offline_t2a", "Offline corpus text→audio", "offline", "offline", "t2a", {}, ("test",),
               manifest="manifest.jsonl", offline=True),
]}

PAPER_TASKS = [name for name, task in TASKS.items() if not task.offline]


def select_tasks(spec: str) -> list[Task]:
    """``all``, ``offline``, ``paper`` or a comma-separated list of task names."""
    from ..errors import UsageError

    if spec == "all":
        return list(TASKS.values())
    if spec == "offline":
        return [t for t in TASKS.values() if t.offline]
    if spec == "paper":
        return [TASKS[name] for name in PAPER_TASKS]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise UsageError(f"--tasks: unknown task {unknown[0] if unknown else spec!r}; use all, offline, paper or "
                         f"names from: {', '.join(TASKS)}")
    return [TASKS[n] for n in names]
