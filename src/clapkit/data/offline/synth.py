"""Sources the corpus renders instead of decoding: SoundFont notes and scores, and espeak-ng, flite and
Festival speech.

Each spec is a small frozen dataclass, picklable for the worker processes, with
``render(sample_rate) -> mono float32`` and ``identity()``: what, besides the bytes of the files it
names (``inputs()``), decides its audio, i.e. its cache key. Paths are not part of the identity, so
a corpus built elsewhere from the same packages reuses the same keys.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

DRUM_BANK = 128  # SoundFont bank of the GM percussion kits
HEADROOM = 0.9
# All-sound-off fades voices out over TinySoundFont's 10 ms TSF_FASTRELEASETIME; rendering longer than
# that ends them, so no render hears the one before it. Before version 2 a 64-sample flush left that
# fade in the next clip, so a clip's audio (and whether a quiet note counted as silent) depended on
# which clips its worker process had rendered before: builds were not reproducible.
FLUSH_SECONDS = 0.05
SOUNDFONT_RENDER_VERSION = 2  # part of every SoundFont render's identity, so older cached renders are redone
_SYNTHS: dict[str, tuple[object, int]] = {}


class RenderError(Exception):
    """A rendered source that cannot be made (an empty score, a failed render); the message says why."""


class MissingTool(Exception):
    """A program or Python package that renders sources is not installed: the machine's fault, not the
    clip's, so the build fails the source instead of dropping (and caching) every clip it renders."""


def _synth(soundfont: str, sample_rate: int) -> tuple[object, int]:
    """A synthesizer with ``soundfont`` loaded, once per process and rate."""
    key = f"{soundfont}@{sample_rate}"
    if key not in _SYNTHS:
        try:
            import tinysoundfont
        except ImportError as e:
            raise MissingTool("the Python package tinysoundfont is not installed (pip install tinysoundfont)") from e
        synth = tinysoundfont.Synth(samplerate=sample_rate)
        _SYNTHS[key] = (synth, synth.sfload(soundfont))
    synth, sfid = _SYNTHS[key]
    synth.sounds_off()
    synth.generate(int(FLUSH_SECONDS * sample_rate))
    return synth, sfid


def _samples(synth, count: int) -> np.ndarray:
    return np.frombuffer(synth.generate(max(count, 0)), dtype=np.float32)


@dataclass(frozen=True)
class NoteSpec:
    """One note from a GM SoundFont; ``bank`` 128 is a percussion kit (``program`` picks the kit)."""

    soundfont: str
    program: int
    pitch: int
    velocity: int
    seconds: float
    release_seconds: float = 1.0
    bank: int = 0

    def inputs(self) -> tuple[str, ...]:
        return (self.soundfont,)

    def identity(self) -> str:
        return repr(("note", SOUNDFONT_RENDER_VERSION, self.program, self.pitch, self.velocity, self.seconds,
                     self.release_seconds, self.bank))

    def render(self, sample_rate: int) -> np.ndarray:
        synth, sfid = _synth(self.soundfont, sample_rate)
        synth.program_select(0, sfid, self.bank, self.program, is_drums=self.bank == DRUM_BANK)
        synth.noteon(0, self.pitch, self.velocity)
        held = _samples(synth, int(self.seconds * sample_rate))
        synth.noteoff(0, self.pitch)
        tail = _samples(synth, int(self.release_seconds * sample_rate))
        return np.concatenate([held, tail]).reshape(-1, 2).mean(axis=1)


@dataclass(frozen=True)
class ScoreSpec:
    """An excerpt of a score played on one GM program: ``notes`` are ``(start s, length s, MIDI pitch,
    velocity)``, already scaled to the tempo and transposed; the render stops at ``seconds``."""

    soundfont: str
    program: int
    notes: tuple[tuple[float, float, int, int], ...]
    seconds: float
    release_seconds: float = 1.0

    def inputs(self) -> tuple[str, ...]:
        return (self.soundfont,)

    def identity(self) -> str:
        return repr(("score", SOUNDFONT_RENDER_VERSION, self.program, self.notes, self.seconds,
                     self.release_seconds))

    def render(self, sample_rate: int) -> np.ndarray:
        if not self.notes:
            raise RenderError("the excerpt has no notes")
        synth, sfid = _synth(self.soundfont, sample_rate)
        synth.program_select(0, sfid, 0, self.program)
        events = sorted([(start, 1, pitch, velocity) for start, _, pitch, velocity in self.notes]
                        + [(start + length, 0, pitch, 0) for start, length, pitch, _ in self.notes])
        chunks, position = [], 0
        for time, is_on, pitch, velocity in events:
            frame = int(min(time, self.seconds) * sample_rate)
            chunks.append(_samples(synth, frame - position))
            position = max(position, frame)
            if time >= self.seconds:
                break
            (synth.noteon(0, pitch, velocity) if is_on else synth.noteoff(0, pitch))
        chunks.append(_samples(synth, int(self.seconds * sample_rate) - position))
        synth.notes_off()
        chunks.append(_samples(synth, int(self.release_seconds * sample_rate)))
        mono = np.concatenate(chunks).reshape(-1, 2).mean(axis=1)
        peak = float(np.abs(mono).max())
        return mono * (HEADROOM / peak) if peak > HEADROOM else mono  # chords add up past full scale


def _speak(program: str, *args: str, out: Path | None = None, package: str = "") -> bytes:
    """Run a speech synthesizer (from the Debian ``package``, by default its name); the WAV it wrote to
    ``out``, or to stdout without one."""
    path = shutil.which(program)
    if path is None:
        raise MissingTool(f"{program} is not installed (apt-get install {package or program})")
    done = subprocess.run([path, *args], capture_output=True, check=False)
    wav = done.stdout if out is None else out.read_bytes() if out.is_file() else b""
    if done.returncode != 0 or not wav:
        raise RenderError(f"{program} failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    return wav


def _decoded(wav: bytes, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate``."""
    import soxr

    data, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    return soxr.resample(mono, rate, sample_rate, quality="HQ") if rate != sample_rate else mono


@dataclass(frozen=True)
class SpeechSpec:
    """Text spoken by espeak-ng with a voice (``en+f3``: language + variant), rate (words per minute)
    and pitch (0-99); ``data`` is the folder that holds ``espeak-ng-data``."""

    data: str
    text: str
    voice: str
    speed: int = 175
    pitch: int = 50

    def inputs(self) -> tuple[str, ...]:
        return ()

    def identity(self) -> str:
        return repr(("espeak-ng", self.text, self.voice, self.speed, self.pitch))

    def render(self, sample_rate: int) -> np.ndarray:
        wav = _speak("espeak-ng", f"--path={self.data}", "--stdout", "-v", self.voice, "-s", str(self.speed),
                     "-p", str(self.pitch), "--", self.text)
        return _decoded(wav, sample_rate)


@dataclass(frozen=True)
class FliteSpec:
    """Text spoken by one of flite's built-in voices (``slt``, ``rms``…), its durations stretched by
    ``stretch`` and its pitch centred on ``pitch`` Hz."""

    text: str
    voice: str
    stretch: float = 1.0
    pitch: int = 100

    def inputs(self) -> tuple[str, ...]:
        return ()

    def identity(self) -> str:
        return repr(("flite", self.text, self.voice, self.stretch, self.pitch))

    def render(self, sample_rate: int) -> np.ndarray:
        with tempfile.TemporaryDirectory() as folder:  # flite writes a file, not stdout
            out = Path(folder) / "speech.wav"
            wav = _speak("flite", "-voice", self.voice, "--setf", f"duration_stretch={self.stretch}",
                         "--setf", f"int_f0_target_mean={self.pitch}", "-t", self.text, "-o", str(out), out=out)
        return _decoded(wav, sample_rate)


FESTIVAL_VOICES = {"ked_diphone": "festvox-kdlpc16k", "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}  # -> package


@dataclass(frozen=True)
class FestivalSpec:
    """Text spoken by one of Festival's English voices (:data:`FESTIVAL_VOICES`), its durations
    stretched by ``stretch``; a diphone voice's pitch is centred on ``pitch`` Hz (0: the voice's own;
    an HTS voice keeps its own)."""

    text: str
    voice: str
    stretch: float = 1.0
    pitch: int = 0

    def inputs(self) -> tuple[str, ...]:
        return ()

    def identity(self) -> str:
        return repr(("festival", self.text, self.voice, self.stretch, self.pitch))

    def scheme(self) -> str:
        """What text2wave evaluates before speaking: the voice, then its rate and pitch."""
        if self.voice.endswith("_hts"):  # the HTS engine takes its speed as a rate, not a stretch
            return (f'(begin (voice_{self.voice}) (set! hts_engine_params (append hts_engine_params '
                    f'(list (list "-r" {1 / self.stretch:.4f})))))')
        pitch = "" if not self.pitch else (
            f" (set! int_lr_params '((target_f0_mean {self.pitch}) (target_f0_std {self.pitch * 0.15:.1f})"
            " (model_f0_mean 170) (model_f0_std 34)))")
        return f"(begin (voice_{self.voice}) (Parameter.set 'Duration_Stretch {self.stretch}){pitch})"

    def render(self, sample_rate: int) -> np.ndarray:
        with tempfile.TemporaryDirectory() as folder:  # text2wave reads a file and writes one
            text, out = Path(folder) / "text.txt", Path(folder) / "speech.wav"
            text.write_text(self.text, encoding="utf-8")
            try:
                wav = _speak("text2wave", "-eval", self.scheme(), "-o", str(out), str(text), out=out,
                             package="festival")
            except RenderError as e:
                if f"voice_{self.voice}" not in str(e):
                    raise
                package = FESTIVAL_VOICES.get(self.voice, "the package that holds it")
                raise MissingTool(f"Festival's voice {self.voice} is not installed (apt-get install {package})") from e
        return _decoded(wav, sample_rate)


Rendered = NoteSpec | ScoreSpec | SpeechSpec | FliteSpec | FestivalSpec
