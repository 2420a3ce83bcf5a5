"""The offline corpus pipeline end to end on locally made fake Debian packages (no network):
real ``dpkg-deb`` packing and unpacking, decoding, licences, skip reasons, resume, atomic output."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from clapkit.data.manifest import file_sha256, read_manifest, resolve
from clapkit.data.offline import BuildOptions, ProcessingParams, build
from clapkit.data.offline.archive import ArchiveError, PackageInfo

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")

RATE = 16000
DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
License: GPL-2+

Files: stereo/bell.oga
License: CC-BY-3.0

Files: stereo/version-two-only.oga
License: GPL-2
"""


def tone(seconds: float, amplitude: float = 0.3, rate: int = 22050, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = amplitude * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1).astype(np.float32)


def write_audio(path: Path, data: np.ndarray, rate: int = 22050, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, data, rate, format=fmt)


def freedesktop_tree(root: Path) -> None:
    stereo = root / "usr/share/sounds/freedesktop/stereo"
    write_audio(stereo / "bell.oga", tone(0.6), fmt="OGG")
    write_audio(stereo / "version-two-only.oga", tone(0.7, amplitude=0.25), fmt="OGG")
    write_audio(stereo / "dialog-warning.oga", tone(12.0, rate=8000), rate=8000, fmt="OGG")  # cut to 10 s
    write_audio(stereo / "silent-thing.wav", np.zeros((22050, 2), np.float32))
    write_audio(stereo / "tiny-click.wav", tone(0.05))
    write_audio(stereo / "copy-of-bell.wav", tone(0.5, amplitude=0.2))
    shutil.copy(stereo / "copy-of-bell.wav", stereo / "second-copy.wav")
    (stereo / "broken-file.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    doc = root / "usr/share/doc/sound-theme-freedesktop"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(DEP5)


def sound_icons_tree(root: Path) -> None:
    write_audio(root / "usr/share/sounds/sound-icons/electric-piano-3.wav", tone(0.4, channels=1))
    doc = root / "usr/share/doc/sound-icons"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Copyright 2002 someone.\n\nLicense:\n\n the GNU General Public License "
                                   "version 2, or (at your option) any later version.\n")


def asterisk_trees(root: Path, transcripts_root: Path) -> None:
    sounds = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    write_audio(sounds / "digits/7.wav", tone(0.5, channels=1, rate=8000), rate=8000)
    write_audio(sounds / "beep.wav", tone(0.3, channels=1, rate=8000), rate=8000)
    write_audio(sounds / "unlisted.wav", tone(0.3, channels=1, rate=8000), rate=8000)
    doc = transcripts_root / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    with gzip.open(doc / "core-sounds-en.txt.gz", "wt") as f:
        f.write("; Core Asterisk Sounds in English\n\ndigits/7: seven\nbeep: [this is a simple beep tone]\n")
    (root / "usr/share/doc/asterisk-core-sounds-en-wav").mkdir(parents=True)
    (root / "usr/share/doc/asterisk-core-sounds-en-wav/copyright").write_text(DEP5.replace("GPL-2+", "CC-BY-SA-3.0"))


def make_deb(tree: Path, package: str, out: Path) -> Path:
    control = tree / "DEBIAN" / "control"
    control.parent.mkdir(parents=True, exist_ok=True)
    control.write_text(f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@example.org>\n"
                       f"Description: fake {package}\n")
    deb = out / f"{package}_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


class FakeArchive:
    """Serves locally built .debs; counts downloads; ``broken`` packages fail to download."""

    def __init__(self, debs: dict[str, Path], broken: frozenset[str] = frozenset()):
        self.debs, self.broken, self.downloads = debs, broken, 0

    def lookup(self, packages):
        return {p: PackageInfo(p, "1.0-1", file_sha256(self.debs[p])) for p in packages if p in self.debs}

    def download(self, package, dest):
        if package in self.broken:
            raise ArchiveError(f"apt-get download {package} failed: 404 Not Found")
        self.downloads += 1
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.debs[package], dest))


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("debs")
    builders = {"sound-theme-freedesktop": freedesktop_tree, "sound-icons": sound_icons_tree}
    debs = {}
    for package, fill in builders.items():
        fill(base / package)
        debs[package] = make_deb(base / package, package, base)
    asterisk_trees(base / "ast", base / "ast-en")
    debs["asterisk-core-sounds-en-wav"] = make_deb(base / "ast", "asterisk-core-sounds-en-wav", base)
    debs["asterisk-core-sounds-en"] = make_deb(base / "ast-en", "asterisk-core-sounds-en", base)
    fsdd = base / "fsdd"
    (fsdd / "recordings").mkdir(parents=True)
    (fsdd / "README.md").write_text("# FSDD\n- Licence: Creative Commons Attribution-ShareAlike 4.0\n")
    for name in ("3_alice_0.wav", "8_bob_12.wav"):
        write_audio(fsdd / "recordings" / name, tone(0.4, channels=1, rate=8000), rate=8000)
    debs["fsdd"] = fsdd
    return debs


SOURCES = ["sound-theme-freedesktop", "sound-icons", "asterisk-core-sounds-en-wav", "lmms-common"]


def run_build(out: Path, debs: dict[str, Path], archive: FakeArchive | None = None, jobs: int = 1) -> dict:
    archive = archive or FakeArchive({k: v for k, v in debs.items() if k != "fsdd"})
    # The eval packages (hydrogen-drumkits, timgm6mb-soundfont) are absent from the fake archive.
    options = BuildOptions(out=out, sources=SOURCES, params=ProcessingParams(sample_rate=RATE), jobs=jobs,
                           eval_sets=True, fsdd=debs["fsdd"], archive=archive)
    return build(options)


@pytest.fixture(scope="module")
def first_build(tmp_path_factory, debs):
    out = tmp_path_factory.mktemp("corpus")
    archive = FakeArchive({k: v for k, v in debs.items() if k != "fsdd"})
    return out, run_build(out, debs, archive, jobs=2), archive


def test_clips_captions_licences_and_splits(first_build):
    out, report, _ = first_build
    clips = read_manifest(out / "manifest.jsonl")
    by_origin = {c.extra["origin"].rsplit("/", 1)[-1]: c for c in clips}
    assert set(by_origin) == {"bell.oga", "dialog-warning.oga", "copy-of-bell.wav", "electric-piano-3.wav",
                              "7.wav", "beep.wav"}
    assert by_origin["bell.oga"].licence == "CC-BY-3.0"  # from its own DEP-5 stanza
    assert by_origin["copy-of-bell.wav"].licence == "GPL-2+"
    assert by_origin["electric-piano-3.wav"].licence == "GPL-2+"  # free-form copyright file
    assert by_origin["electric-piano-3.wav"].split == "val"
    assert by_origin["bell.oga"].split == "train"
    assert by_origin["7.wav"].captions[0].endswith('"seven"') and by_origin["7.wav"].labels == ["speech", "English"]
    assert "simple beep tone" in by_origin["beep.wav"].captions[0]
    assert "dialog warning" in by_origin["dialog-warning.oga"].captions[0]
    for clip in clips:
        assert clip.captions and clip.licence and clip.source.startswith("debian:")
        data, rate = soundfile.read(resolve(out / "manifest.jsonl", clip))
        assert rate == RATE == clip.sample_rate and data.ndim == 1
        assert abs(len(data) / rate - clip.duration) < 1e-3
    assert by_origin["dialog-warning.oga"].duration == pytest.approx(10.0)


def test_skip_reasons_are_reported(first_build):
    _, report, _ = first_build
    dropped = report["sources"]["sound-theme-freedesktop"]["dropped"]
    assert dropped == {"silent": 1, "too short": 1, "decode error": 1, "duplicate of an earlier file": 1,
                       "licence GPL-2 excluded": 1}
    files = dict(report["sources"]["sound-theme-freedesktop"]["dropped_files"])
    assert any(name.endswith("broken-file.wav") for name in files)
    reason = next(r for name, r in files.items() if name.endswith("version-two-only.oga"))
    assert "cannot be combined" in reason  # GPL-2.0-only material stays out of a GPL-3 model's data
    assert report["sources"]["asterisk-core-sounds-en-wav"]["dropped"] == {"no transcript": 1}
    assert report["sources"]["lmms-common"]["status"] == "skipped"
    assert "lmms-common" in report["sources"]["lmms-common"]["reason"]
    assert report["sources"]["hydrogen-drumkits"]["status"] == "skipped"  # not in the fake archive


def test_report_totals_and_eval_set_read_in_place(first_build, debs):
    out, report, _ = first_build
    assert report["splits"]["train"]["clips"] == 5 and report["splits"]["val"]["clips"] == 1
    assert json.loads((out / "report.json").read_text())["splits"] == report["splits"]
    digits = read_manifest(out / "eval_digits.jsonl")
    assert [c.labels for c in digits] == [["three"], ["eight"]]
    assert all(Path(c.path).is_absolute() and Path(c.path).parent == debs["fsdd"] / "recordings" for c in digits)
    assert {c.licence for c in digits} == {"CC-BY-SA-4.0"}
    assert not list((out / "clips").rglob("*.wav"))  # FSDD is never copied
    assert not [p for p in out.rglob("*.tmp")]


def test_rerun_does_no_work_and_gives_the_same_manifest(first_build, debs):
    out, _, archive = first_build
    before = (out / "manifest.jsonl").read_bytes()
    downloads = archive.downloads
    report = run_build(out, debs, archive)
    assert report["work"] == {}
    assert archive.downloads == downloads
    packages = {name: s for name, s in report["sources"].items() if name != "fsdd" and s["status"] == "ok"}
    assert len(packages) == 3 and all(s["cached"] for s in packages.values())
    assert (out / "manifest.jsonl").read_bytes() == before


def test_interrupted_build_resumes_only_unfinished_clips(tmp_path, debs):
    archive = FakeArchive({k: v for k, v in debs.items() if k != "fsdd"})
    run_build(tmp_path, debs, archive)
    # Simulate a crash in sound-icons before its package record and one clip result were written.
    (tmp_path / ".cache/packages/sound-icons.json").unlink()
    for result in (tmp_path / ".cache/clips").rglob("*.json"):
        if json.loads(result.read_text()).get("status") == "kept":
            clip_file = next((tmp_path / "clips/sound-icons").glob("*.flac"))
            if result.stem.startswith(clip_file.stem):
                result.unlink()
    report = run_build(tmp_path, debs, archive)
    assert report["work"] == {"packages_unpacked": 1, "clips_processed": 1}
    assert archive.downloads == 4  # the .deb was cached, not downloaded again
    assert report["sources"]["sound-icons"]["kept"] == 1


def test_failed_download_is_reported_and_not_fatal(tmp_path, debs):
    archive = FakeArchive({k: v for k, v in debs.items() if k != "fsdd"}, broken=frozenset({"sound-icons"}))
    report = run_build(tmp_path, debs, archive)
    assert report["sources"]["sound-icons"]["status"] == "failed"
    assert "404" in report["sources"]["sound-icons"]["reason"]
    assert report["sources"]["sound-theme-freedesktop"]["kept"] == 3
    assert {c.split for c in read_manifest(tmp_path / "manifest.jsonl")} == {"train"}


def test_a_build_into_a_log_file_shows_its_progress(tmp_path, debs, capsys):
    run_build(tmp_path, debs, FakeArchive({k: v for k, v in debs.items() if k != "fsdd"}))
    log = capsys.readouterr().err
    assert "packages" in log and "sound-icons" in log  # the package bar and each package's clip bar


def test_a_missing_renderer_fails_its_source_and_is_not_cached(tmp_path, debs, monkeypatch):
    from clapkit.data.offline import speech, synth

    tree = tmp_path / "espeak"
    variants = tree / "usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"
    variants.mkdir(parents=True)
    (variants / "f3").write_text("name female3\ngender female\n")
    (tree / "usr/share/doc/espeak-ng-data").mkdir(parents=True)
    (tree / "usr/share/doc/espeak-ng-data/copyright").write_text(DEP5)
    archive = FakeArchive({"espeak-ng-data": make_deb(tree, "espeak-ng-data", tmp_path)})
    monkeypatch.setattr(speech, "utterances", lambda: [speech.Utterance("seven", "the number seven", "number",
                                                                        speech.ENGLISH, 2)])
    options = BuildOptions(out=tmp_path / "corpus", sources=["espeak-ng-data"], params=ProcessingParams(sample_rate=RATE),
                           archive=archive)

    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    failed = build(options)["sources"]["espeak-ng-data"]
    assert failed["status"] == "failed" and "espeak-ng is not installed" in failed["reason"]
    assert not list((tmp_path / "corpus/.cache").rglob("clips/*/*.json"))

    # Once it is installed, the next build renders every clip instead of reusing the failure.
    monkeypatch.setattr(synth.SpeechSpec, "render", lambda spec, rate: tone(0.5, channels=1, rate=rate)[:, 0])
    built = build(options)["sources"]["espeak-ng-data"]
    assert (built["status"], built["kept"]) == ("ok", 2)


def test_clip_drops_older_builds_cached_for_a_missing_renderer_are_redone(tmp_path, debs):
    archive = FakeArchive({k: v for k, v in debs.items() if k != "fsdd"})
    run_build(tmp_path, debs, archive)
    (tmp_path / ".cache/packages/sound-icons.json").unlink()
    icon = next((tmp_path / "clips/sound-icons").glob("*.flac"))
    result = next((tmp_path / ".cache/clips").rglob(f"{icon.stem}*.json"))
    result.write_text(json.dumps({"status": "dropped", "reason": "render error: espeak-ng is not installed"}))
    report = run_build(tmp_path, debs, archive)
    assert report["work"]["clips_processed"] == 1
    assert report["sources"]["sound-icons"]["kept"] == 1
