"""A small real offline build from the Debian archive (network: apt-get download)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile

from clapkit.cli import main
from clapkit.data.manifest import read_manifest, resolve
from clapkit.data.offline import synth
from clapkit.data.offline.archive import AptArchive, extract, fetch
from clapkit.data.offline.synth import NoteSpec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                       reason="needs a Debian/Ubuntu package archive"),
]


def test_small_real_build(tmp_path, capsys):
    sources = "sound-theme-freedesktop,timgm6mb-soundfont"
    args = ["data", "build", "offline", "--out", str(tmp_path), "--sources", sources, "--sample-rate", "22050"]
    assert main(args) == 0
    assert "sound-theme-freedesktop" in capsys.readouterr().out
    train = read_manifest(tmp_path / "manifest.jsonl")
    notes = read_manifest(tmp_path / "eval_gm.jsonl")
    assert len(train) >= 20 and len(notes) >= 300
    assert {c.split for c in train} == {"train"} and {c.split for c in notes} == {"eval_gm"}
    assert all(c.licence and c.captions for c in train + notes)
    assert {c.licence for c in notes} == {"GPL-2"}
    assert {"strings", "brass", "piano"} <= {c.labels[0] for c in notes}
    for clip in train[:5] + notes[:5]:
        data, rate = soundfile.read(resolve(tmp_path / "manifest.jsonl", clip))
        assert rate == 22050 and 0.2 <= len(data) / rate <= 10.0
    assert main(args) == 0  # second run: everything cached
    assert "cached" in capsys.readouterr().out


def test_a_soundfont_render_is_the_same_whatever_was_rendered_before_it(tmp_path, monkeypatch):
    archive = AptArchive()
    info = archive.lookup(["timgm6mb-soundfont"])["timgm6mb-soundfont"]
    extract(fetch(archive, info, tmp_path / "debs"), tmp_path / "files")
    soundfont = str(next((tmp_path / "files").rglob("*.sf2")))
    quiet_piano = NoteSpec(soundfont, 0, 60, 30, 0.5)
    loud_strings_cut_off = NoteSpec(soundfont, 48, 40, 127, 2.0, release_seconds=0.0)
    monkeypatch.setattr(synth, "_SYNTHS", {})
    alone = quiet_piano.render(22050)
    loud_strings_cut_off.render(22050)
    assert np.array_equal(quiet_piano.render(22050), alone)
