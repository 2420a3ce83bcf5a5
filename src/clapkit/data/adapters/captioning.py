"""Audio captioning datasets: AudioCaps, Clotho, WavCaps and MACS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from .common import (
    AUDIO_SUFFIXES,
    AudioIndex,
    DatasetError,
    Entry,
    first_existing,
    group_by,
    licence_from_url,
    read_json,
    read_table,
    require_file,
)

AUDIOCAPS_SPLITS = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
CLOTHO_SPLITS = {"development": "development", "validation": "validation", "evaluation": "evaluation"}
WAVCAPS_SOURCES = {
    "AudioSet_SL": "as_final.json",
    "BBC_Sound_Effects": "bbc_final.json",
    "FreeSound": "fsd_final.json",
    "SoundBible": "sb_final.json",
}
WAVCAPS_LICENCE = "WavCaps: academic use only; audio under its source's terms"


def read_audiocaps(root: Path, audio_dir: Path | None = None) -> Iterator[Entry]:
    """AudioCaps (Kim et al. 2019): captions for AudioSet segments you downloaded::

        <root>/dataset/{train,val,test}.csv    audiocap_id,youtube_id,start_time,caption
                                               (the CSVs may also sit directly in <root>)
        <root>/audio/**/<youtube_id>.<ext>     (or ``Y<id>``, ``<id>_<start_time>``, ``<audiocap_id>``;
                                               ``audio_dir=``)

    One clip per (youtube_id, start_time): train clips have one caption, val/test clips five.
    Split: ``train``, ``val`` or ``test``; every split CSV present is read (at least one must be).
    """
    csv_dir = first_existing(root / "dataset", root)
    present = {split: csv_dir / name for split, name in AUDIOCAPS_SPLITS.items() if (csv_dir / name).is_file()}
    if not present:
        raise DatasetError(f"{csv_dir}: none of {', '.join(AUDIOCAPS_SPLITS.values())} found")
    index = AudioIndex(Path(audio_dir) if audio_dir else root / "audio")
    for split, path in present.items():
        rows = read_table(path, ("audiocap_id", "youtube_id", "start_time", "caption"))
        for row in rows:
            row["segment"] = f"{row['youtube_id']}_{row['start_time']}"
        for segment, segment_rows in group_by(rows, "segment").items():
            first = segment_rows[0]
            ytid = first["youtube_id"]
            audio = index.find(
                ytid, f"Y{ytid}", segment, f"Y{segment}", *(r["audiocap_id"] for r in segment_rows)
            ) or index.missing(ytid)
            yield Entry(
                audio=audio,
                captions=[r["caption"] for r in segment_rows],
                split=split,
                licence="YouTube (per-video terms); captions MIT",
                extra={
                    "youtube_id": ytid,
                    "start_time": first["start_time"],
                    "audiocap_ids": [r["audiocap_id"] for r in segment_rows],
                },
            )


def read_clotho(root: Path) -> Iterator[Entry]:
    """Clotho v2.1 (Drossos et al. 2020), official Zenodo files::

        <root>/clotho_captions_{development,validation,evaluation}.csv  file_name,caption_1,…,caption_5
        <root>/clotho_metadata_{development,validation,evaluation}.csv  (optional; ISO-8859-1; licence
                                                                         from its ``license`` column)
        <root>/{development,validation,evaluation}/<file_name>          (from clotho_audio_*.7z)

    Five captions per clip; split: ``development``, ``validation`` or ``evaluation``; every
    split whose captions CSV is present is read (at least one must be).
    """
    present = {
        split: root / f"clotho_captions_{split}.csv"
        for split in CLOTHO_SPLITS
        if (root / f"clotho_captions_{split}.csv").is_file()
    }
    if not present:
        raise DatasetError(f"{root}: no clotho_captions_<split>.csv found")
    caption_columns = tuple(f"caption_{k}" for k in range(1, 6))
    for split, path in present.items():
        metadata = root / f"clotho_metadata_{split}.csv"
        licences = (
            {
                row["file_name"]: licence_from_url(row["license"])
                for row in read_table(metadata, ("file_name", "license"), encoding="ISO-8859-1")
            }
            if metadata.is_file()
            else {}
        )
        for row in read_table(path, ("file_name", *caption_columns)):
            yield Entry(
                audio=root / CLOTHO_SPLITS[split] / row["file_name"],
                captions=[row[c] for c in caption_columns],
                split=split,
                licence=licences.get(row["file_name"], "Freesound (per-clip licence)"),
            )


def read_wavcaps(root: Path, audio_dir: Path | None = None, sources: tuple[str, ...] | None = None) -> Iterator[Entry]:
    """WavCaps (Mei et al. 2023), as on the Hugging Face hub (cvssp/WavCaps)::

        <root>/json_files/AudioSet_SL/as_final.json        {"data": [{"id", "caption", "duration", …}]}
        <root>/json_files/BBC_Sound_Effects/bbc_final.json
        <root>/json_files/FreeSound/fsd_final.json
        <root>/json_files/SoundBible/sb_final.json
        <root>/Audio/<source>/**/<id>.flac                 (unzipped Zip_files; ``audio_dir=`` for another
                                                            parent; AudioSet_SL ids end in .wav, the
                                                            audio may be .flac)

    ``sources`` picks among the four (default: every JSON present). One caption per clip; split
    ``train``; the source's name goes to ``wavcaps_source``.
    """
    json_dir = root / "json_files"
    chosen = sources or tuple(s for s, f in WAVCAPS_SOURCES.items() if (json_dir / s / f).is_file())
    if not chosen:
        raise DatasetError(f"{json_dir}: no WavCaps JSON file ({', '.join(WAVCAPS_SOURCES.values())})")
    audio_root = Path(audio_dir) if audio_dir else root / "Audio"
    for source in chosen:
        if source not in WAVCAPS_SOURCES:
            raise DatasetError(
                f"{root}: unknown WavCaps source {source!r} (expected one of {', '.join(WAVCAPS_SOURCES)})"
            )
        path = json_dir / source / WAVCAPS_SOURCES[source]
        data = read_json(path)
        records = data.get("data") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise DatasetError(f'{path}: expected {{"data": [...]}}')
        index = AudioIndex(audio_root / source)
        for n, record in enumerate(records):
            if not isinstance(record, dict) or not record.get("id") or not isinstance(record.get("caption"), str):
                raise DatasetError(f"{path}: data[{n}] lacks 'id' or 'caption'")
            clip_id = str(record["id"])
            stem = clip_id[: -len(Path(clip_id).suffix)] if Path(clip_id).suffix.lower() in AUDIO_SUFFIXES else clip_id
            licence = record.get("license")
            yield Entry(
                audio=index.find(clip_id, stem) or index.missing(f"{stem}.flac"),
                captions=[record["caption"]],
                split="train",
                licence=licence_from_url(licence) if licence else WAVCAPS_LICENCE,
                extra={"wavcaps_source": source, "wavcaps_id": clip_id},
            )


def read_macs(root: Path, audio_dir: Path | None = None) -> Iterator[Entry]:
    """MACS, Multi-Annotator Captioned Soundscapes (Martín-Morató & Mesaros 2021, Zenodo 5114771),
    captions for TAU Urban Acoustic Scenes 2019 development clips::

        <root>/MACS.yaml          files: [{filename, annotations: [{annotator_id, sentence, tags}]}]
        <root>/audio/**/<filename>  (the TAU 2019 development audio; ``audio_dir=``)

    Two to five captions per clip; labels: the TAU acoustic scene, the file-name prefix
    (``airport-barcelona-0-0-a.wav`` → ``airport``); annotators' tags go to ``tags``. Split ``train``.
    """
    path = require_file(root / "MACS.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DatasetError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise DatasetError(f"{path}: expected a top-level 'files' list")
    index = AudioIndex(Path(audio_dir) if audio_dir else root / "audio")
    for n, item in enumerate(files):
        annotations = item.get("annotations") if isinstance(item, dict) else None
        if not isinstance(annotations, list) or not item.get("filename"):
            raise DatasetError(f"{path}: files[{n}] lacks 'filename' or 'annotations'")
        if not all(isinstance(a, dict) and isinstance(a.get("sentence"), str) for a in annotations):
            raise DatasetError(f"{path}: files[{n}] has an annotation without a 'sentence'")
        filename = str(item["filename"])
        yield Entry(
            audio=index.find(filename) or index.missing(filename),
            captions=[a["sentence"] for a in annotations],
            labels=[filename.split("-", 1)[0]],
            split="train",
            licence="TAU non-commercial",
            extra={"tags": sorted({t for a in annotations for t in (a.get("tags") or [])})},
        )
