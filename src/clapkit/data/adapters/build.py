"""Turn an adapter's entries into manifest clips: probe each audio file (format, duration, sha256),
skip and list the ones that are missing or unreadable, and write the manifest.

Audio is probed with :func:`clapkit.audio.io.audio_info`, the decoder inference uses, so every file
it reads (m4a, webm, ... through PyAV) becomes a clip, and every file it refuses is skipped with its
reason."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from clapkit.audio.io import AudioError, AudioInfo, audio_info, describe, stream_audio
from clapkit.data.manifest import Clip, file_sha256, write_manifest

from .common import Entry, labels_to_caption

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A clip left out of a manifest, with the reason (one line)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{describe(self.path)}: {self.reason}"  # printable whatever bytes the name holds



def manifest_path_for(audio: Path, manifest_dir: Path, absolute: bool) -> str:
    """The ``path`` field: relative to the manifest's folder unless asked for absolute paths
    (or impossible, e.g. another drive)."""
    audio = audio.absolute()
    if not absolute:
        try:
            return Path(os.path.relpath(audio, manifest_dir.absolute())).as_posix()
        except ValueError:
            pass
    return audio.as_posix()


def audio_duration(path: Path, info: AudioInfo) -> float:
    """Seconds of audio: the header's length, or, where the container does not give one, the frames
    counted by decoding (in bounded memory, at the file's own rate)."""
    if info.duration is not None:
        return float(info.duration)
    return sum(len(chunk) for chunk in stream_audio(path, info.sample_rate)) / info.sample_rate


def skip_reason(error: AudioError, path: Path) -> str:
    """The decoder's cause for ``path`` (its message less the name), worded for the skipped list."""
    cause = str(error).removeprefix(f"{describe(path)}: ")
    return "audio file not found" if cause == "file not found" else f"unreadable audio ({cause})"


def probe(entry: Entry, source: str, manifest_dir: Path, absolute: bool, caption_labels: bool) -> Clip | Skipped:
    """The manifest clip for ``entry`` (rate and duration from the audio's header, sha256 of its
    bytes), or why it is skipped."""
    if entry.problem:
        return Skipped(entry.audio, entry.problem)
    try:
        info = audio_info(entry.audio)
        duration = audio_duration(entry.audio, info)
    except AudioError as error:
        return Skipped(entry.audio, skip_reason(error, entry.audio))
    path = manifest_path_for(entry.audio, manifest_dir, absolute)
    captions = list(entry.captions)
    if caption_labels and not captions and entry.labels:
        captions = [labels_to_caption(entry.labels, f"{source}:{path}")]
    return Clip(
        path=path,
        captions=captions,
        labels=list(entry.labels),
        split=entry.split,
        source=source,
        licence=entry.licence,
        duration=duration,
        sample_rate=info.sample_rate,
        sha256=file_sha256(entry.audio),
        extra=dict(entry.extra),
    )


def collect_clips(
    entries: Iterable[Entry],
    source: str,
    manifest_dir: Path,
    *,
    absolute: bool = False,
    caption_labels: bool = False,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Clip], list[Skipped]]:
    """Probe every entry's audio (in ``workers`` threads, order kept); returns the clips and the
    skipped entries. ``caption_labels`` gives label-only clips one caption made from their labels."""
    clips: list[Clip] = []
    skipped: list[Skipped] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda e: probe(e, source, manifest_dir, absolute, caption_labels), entries)
        for n, result in enumerate(results, 1):
            (clips if isinstance(result, Clip) else skipped).append(result)
            if progress is not None:
                progress(n)
    return clips, skipped


def write_with_report(out: Path, clips: list[Clip], skipped: list[Skipped]) -> Path:
    """Write the manifest; skipped clips go to ``<out>.skipped.txt`` and to the log, at the end."""
    write_manifest(out, clips)
    report = out.with_name(out.name + ".skipped.txt")
    if skipped:
        report.write_text("".join(f"{s}\n" for s in skipped), encoding="utf-8")
        log.warning(
            "%s: %d clip(s) skipped (listed in %s):\n%s", out, len(skipped), report, "\n".join(str(s) for s in skipped)
        )
    elif report.exists():
        report.unlink()
    return out
