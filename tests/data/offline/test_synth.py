"""Rendered corpus sources: scores play their notes at the right samples, speech comes from
espeak-ng, file segments are the stated part of a file, and identities leave paths out."""
from __future__ import annotations

import glob
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from clapkit.data.offline import synth
from clapkit.data.offline.audio import FileSegment, ProcessingParams, process
from clapkit.data.offline.synth import NoteSpec, RenderError, ScoreSpec, SpeechSpec

RATE = 1000


class RecordingSynth:
    """Stands in for tinysoundfont: logs events at the sample they happen; outputs constant 0.5."""

    def __init__(self):
        self.position, self.events = 0, []

    def generate(self, samples):
        self.position += samples
        return np.full(2 * samples, 0.5, np.float32).tobytes()

    def program_select(self, chan, sfid, bank, preset, is_drums=False):
        self.events.append(("program", self.position, bank, preset, is_drums))

    def noteon(self, chan, key, velocity):
        self.events.append(("on", self.position, key, velocity))

    def noteoff(self, chan, key):
        self.events.append(("off", self.position, key))

    def notes_off(self, chan=None):
        self.events.append(("all off", self.position))


@pytest.fixture
def recorder(monkeypatch):
    fake = RecordingSynth()
    monkeypatch.setattr(synth, "_synth", lambda soundfont, rate: (fake, 1))
    return fake


def test_score_plays_each_note_at_its_sample_and_stops_at_the_excerpt_end(recorder):
    notes = ((0.0, 0.5, 60, 90), (0.25, 1.0, 64, 80), (2.5, 1.0, 67, 70))  # the last starts after the end
    wave = ScoreSpec("x.sf2", 19, notes, seconds=2.0, release_seconds=0.5).render(RATE)
    assert recorder.events[0] == ("program", 0, 0, 19, False)
    assert ("on", 0, 60, 90) in recorder.events and ("off", 500, 60) in recorder.events
    assert ("on", 250, 64, 80) in recorder.events and ("off", 1250, 64) in recorder.events
    assert not any(e[0] == "on" and e[2] == 67 for e in recorder.events)
    assert recorder.events[-1] == ("all off", 2000)
    assert wave.shape == (2500,)  # 2 s excerpt + 0.5 s release, mixed to mono


def test_loud_scores_are_scaled_to_the_headroom(monkeypatch):
    fake = RecordingSynth()
    fake.generate = lambda samples: np.full(2 * samples, 3.0, np.float32).tobytes()
    monkeypatch.setattr(synth, "_synth", lambda soundfont, rate: (fake, 1))
    wave = ScoreSpec("x.sf2", 0, ((0.0, 1.0, 60, 100),), seconds=1.0).render(RATE)
    assert np.abs(wave).max() == pytest.approx(synth.HEADROOM)


def test_an_empty_excerpt_is_a_render_error_and_the_clip_is_dropped(tmp_path):
    with pytest.raises(RenderError, match="no notes"):
        ScoreSpec("x.sf2", 0, (), seconds=1.0).render(RATE)
    result = process(ScoreSpec("x.sf2", 0, (), seconds=1.0), str(tmp_path / "c.flac"), ProcessingParams(sample_rate=RATE))
    assert result == {"status": "dropped", "reason": "render error: the excerpt has no notes"}


def test_drum_hits_select_the_percussion_bank(recorder):
    NoteSpec("x.sf2", 25, 38, 112, 0.5, bank=synth.DRUM_BANK).render(RATE)
    assert recorder.events[0] == ("program", 0, 128, 25, True)


def test_each_render_starts_after_the_previous_renders_fade_out_has_ended(monkeypatch):
    """TinySoundFont's all-sound-off fades over 10 ms; a shorter flush leaves that fade in the next
    clip, and then a clip depends on which clips its worker process rendered before it."""
    calls = []

    class Synth:
        def __init__(self, samplerate):
            pass

        def sfload(self, path):
            return 1

        def sounds_off(self):
            calls.append("sounds off")

        def generate(self, samples):
            calls.append(samples)

    monkeypatch.setitem(sys.modules, "tinysoundfont", SimpleNamespace(Synth=Synth))
    monkeypatch.setattr(synth, "_SYNTHS", {})
    synth._synth("x.sf2", RATE)
    synth._synth("x.sf2", RATE)
    assert calls[0::2] == ["sounds off", "sounds off"]
    assert all(flushed > 0.010 * RATE for flushed in calls[1::2])


def test_identities_leave_paths_out_and_name_the_render_version():
    assert NoteSpec("/a/x.sf2", 0, 60, 90, 2.5).identity() == NoteSpec("/b/x.sf2", 0, 60, 90, 2.5).identity()
    assert NoteSpec("x", 0, 60, 90, 2.5, bank=128).identity() != NoteSpec("x", 0, 60, 90, 2.5).identity()
    assert str(synth.SOUNDFONT_RENDER_VERSION) in NoteSpec("x", 0, 60, 90, 2.5).identity()  # old renders are redone
    assert str(synth.SOUNDFONT_RENDER_VERSION) in ScoreSpec("x", 0, ((0.0, 1.0, 60, 90),), 2.0).identity()
    assert SpeechSpec("/a", "seven", "en+m1").identity() == SpeechSpec("/b", "seven", "en+m1").identity()
    assert FileSegment("/a.ogg", 10.0, 10.0).inputs() == ("/a.ogg",)


def test_file_segment_is_that_part_of_the_file(tmp_path):
    ramp = np.linspace(-0.5, 0.5, 30 * RATE, dtype=np.float32)
    soundfile.write(tmp_path / "long.wav", ramp, RATE, subtype="FLOAT")
    part = FileSegment(str(tmp_path / "long.wav"), 10.0, 10.0).render(RATE)
    np.testing.assert_array_equal(part, ramp[10 * RATE:20 * RATE])


ESPEAK_DATA = sorted(glob.glob("/usr/lib/*/espeak-ng-data"))


@pytest.mark.skipif(shutil.which("espeak-ng") is None or not ESPEAK_DATA,
                    reason="needs espeak-ng (apt-get install espeak-ng)")
def test_speech_is_rendered_by_espeak_ng_deterministically():
    data = str(Path(ESPEAK_DATA[0]).parent)
    spec = SpeechSpec(data, "seven", "en+f3", speed=160, pitch=60)
    first, second = spec.render(16000), spec.render(16000)
    assert 0.2 < first.size / 16000 < 2.0 and np.abs(first).max() > 0.05
    np.testing.assert_array_equal(first, second)
    other = SpeechSpec(data, "seven", "en+m3", speed=160, pitch=30).render(16000)
    assert other.shape != first.shape or not np.array_equal(other, first)


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt-get install flite)")
def test_flite_speech_is_deterministic_and_follows_voice_rate_and_pitch():
    spec = synth.FliteSpec("seven", "slt", stretch=1.0, pitch=200)
    first = spec.render(16000)
    assert 0.2 < first.size / 16000 < 2.0 and np.abs(first).max() > 0.05
    np.testing.assert_array_equal(first, spec.render(16000))
    slower = synth.FliteSpec("seven", "slt", stretch=1.3, pitch=200).render(16000)
    assert slower.size > first.size
    assert synth.FliteSpec("seven", "rms", pitch=100).render(32000).size > 0


def test_missing_flite_is_a_missing_tool(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(synth.MissingTool, match="flite is not installed"):
        synth.FliteSpec("seven", "slt").render(16000)


FESTIVAL_VOICES_INSTALLED = shutil.which("text2wave") is not None and all(
    any(Path("/usr/share/festival/voices").glob(f"*/{voice}")) for voice in synth.FESTIVAL_VOICES)


@pytest.mark.skipif(not FESTIVAL_VOICES_INSTALLED,
                    reason="needs Festival and its voices (apt-get install festival festvox-kdlpc16k festvox-us-slt-hts)")
@pytest.mark.parametrize("voice", sorted(synth.FESTIVAL_VOICES))
def test_festival_speech_is_deterministic_and_follows_voice_and_rate(voice):
    spec = synth.FestivalSpec("seven", voice, stretch=1.0, pitch=0)
    first = spec.render(16000)
    assert 0.2 < first.size / 16000 < 2.0 and np.abs(first).max() > 0.05
    np.testing.assert_array_equal(first, spec.render(16000))
    assert synth.FestivalSpec("seven", voice, stretch=1.3).render(16000).size > first.size
    assert synth.FestivalSpec("seven", voice, stretch=0.8).render(16000).size < first.size


@pytest.mark.skipif(not FESTIVAL_VOICES_INSTALLED, reason="needs Festival and its voices")
def test_festival_diphone_pitch_moves_the_voice():
    low, high = (synth.FestivalSpec("eight", "ked_diphone", pitch=pitch).render(16000) for pitch in (85, 150))
    assert low.shape == high.shape and not np.array_equal(low, high)


def test_festival_scheme_sets_voice_rate_and_pitch():
    diphone = synth.FestivalSpec("seven", "ked_diphone", stretch=1.15, pitch=130).scheme()
    assert diphone.startswith("(begin (voice_ked_diphone)") and "'Duration_Stretch 1.15" in diphone
    assert "(target_f0_mean 130)" in diphone
    assert "target_f0_mean" not in synth.FestivalSpec("seven", "ked_diphone", pitch=0).scheme()
    assert '(list "-r" 0.8000)' in synth.FestivalSpec("seven", "cmu_us_slt_arctic_hts", stretch=1.25).scheme()


def test_missing_festival_or_voice_is_a_missing_tool(monkeypatch):
    def failed(program, *args, **kwargs):
        raise synth.RenderError("text2wave failed: SIOD ERROR: unbound variable : voice_ked_diphone")

    monkeypatch.setattr(synth, "_speak", failed)
    with pytest.raises(synth.MissingTool, match="apt-get install festvox-kdlpc16k"):
        synth.FestivalSpec("seven", "ked_diphone").render(16000)
    monkeypatch.undo()
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(synth.MissingTool, match=r"text2wave is not installed \(apt-get install festival\)"):
        synth.FestivalSpec("seven", "ked_diphone").render(16000)


def test_missing_espeak_is_a_missing_tool_not_a_bad_clip(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(synth.MissingTool, match="espeak-ng is not installed"):
        SpeechSpec("/nowhere", "seven", "en").render(16000)


def test_long_files_give_further_ten_second_segments(tmp_path):
    from clapkit.data.offline.sources import segments

    soundfile.write(tmp_path / "long.wav", np.zeros(35 * RATE, np.float32) + 0.1, RATE)
    soundfile.write(tmp_path / "short.wav", np.zeros(15 * RATE, np.float32) + 0.1, RATE)
    found = segments("music/long.wav", tmp_path / "long.wav", count=6)
    assert [name for name, _ in found] == ["music/long.wav#t=10s", "music/long.wav#t=20s"]  # 30-35 s is too short
    assert [s.start for _, s in found] == [10.0, 20.0]
    assert segments("music/short.wav", tmp_path / "short.wav", count=6) == []
    assert segments("music/long.wav", tmp_path / "long.wav", count=0) == []
    assert segments("x.wav", tmp_path / "missing.wav", count=6) == []  # the file's own clip reports the error
