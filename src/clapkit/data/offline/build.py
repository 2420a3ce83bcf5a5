"""Build the offline corpus: packages -> clips -> ``manifest.jsonl`` + ``report.json``.

Layout of the output folder::

    manifest.jsonl            training corpus (split train/val/test by source package)
    eval_drums.jsonl          evaluation sets (hydrogen-drumkits, timgm6mb-soundfont, FSDD)
    eval_gm.jsonl
    eval_digits.jsonl         FSDD, read in place: absolute paths into the FSDD folder
    report.json               per source: clips kept, dropped and why, hours; per split totals
                              (eval_report.json for `clapkit data build eval`)
    clips/<package>/<key>.flac
    .cache/                   debs, per-package records, per-clip results, unpacked trees

Caching: a package's record is keyed by the SHA256 of its .deb(s) in the archive index and the
processing parameters, so an unchanged package is neither downloaded nor unpacked again. Each
clip's result is keyed by the SHA256 of its source file (or SoundFont + note) and the parameters,
so an interrupted build redoes only the clips it had not finished. Every skipped package or file
is in the report with its reason. A renderer that is not installed (espeak-ng, flite, tinysoundfont) fails
its source, with nothing cached, and the build exits non-zero: installing it and re-running finishes
the corpus.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ...audio.io import audio_info
from ..manifest import Clip, file_sha256, write_manifest
from . import audio
from .archive import AptArchive, Archive, PackageInfo, extract, fetch
from .captions import caption
from .licences import EXCLUDED_LICENCES, guess_licence, read_package_copyright
from .sources import EVAL_SOURCES, Item, SourceSpec, refuse_reserved, resolve_sources
from .synth import MissingTool

# 2: corpus v2 (GM family in captions, licence exclusions, long-file segments); 3: a missing renderer
# fails its source instead of dropping its clips (records that dropped them are rebuilt); 4: rendered
# notes and drum hits carry every caption template.
RULES_VERSION = 4
CORPUS_SPLITS = ("train", "val", "test")  # the rest are evaluation sets, never trained on
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class BuildOptions:
    out: Path
    sources: list[str] | None = None
    params: audio.ProcessingParams = field(default_factory=audio.ProcessingParams)
    jobs: int = 2
    eval_sets: bool = False
    fsdd: Path | None = None
    archive: Archive = field(default_factory=AptArchive)
    report_name: str = "report.json"


class InlineExecutor(Executor):
    """Runs tasks in this process (``--jobs 1``): simpler to debug and to test."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:
            future.set_exception(e)
        return future


def _progress(iterable: Iterable, **kwargs) -> tqdm:
    """A progress bar; into a log file (a build can take many minutes there too) a line every 30 s."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, mininterval=0.1 if interactive else 30, leave=not interactive, **kwargs)


def _write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _short_reason(reason: str) -> str:
    return reason.split(":", 1)[0]


class Builder:
    """Runs one build; ``stats`` counts the work actually done (packages unpacked, clips made)."""

    def __init__(self, options: BuildOptions, executor: Executor):
        self.options = options
        self.executor = executor
        self.cache = options.out / ".cache"
        self.seen: dict[str, str] = {}  # clip key -> first item that produced it
        self.stats = Counter()

    def package_record(self, spec: SourceSpec, known: dict[str, PackageInfo]) -> dict:
        """The package's clips and drops, from cache or built now; never raises for package trouble."""
        base = {"package": spec.package, "split": spec.split, "version": "", "clips": [], "dropped": []}
        missing = [name for name in (spec.package, *spec.metadata) if name not in known]
        if spec.pypi and spec.package in missing:
            reason = f"the Python package {spec.pypi} is not installed (pip install {spec.pypi})"
            return {**base, "status": "skipped", "reason": reason}
        if missing:
            reason = (f"not in this system's package lists: {', '.join(missing)} "
                      f"(run `apt-get update` if the lists are empty or stale)")
            return {**base, "status": "skipped", "reason": reason}
        infos = [known[name] for name in (spec.package, *spec.metadata)]
        key = _digest(*(i.sha256 for i in infos), self.options.params.fingerprint(), str(RULES_VERSION))
        record_path = self.cache / "packages" / f"{spec.package}.json"
        cached = _read_json(record_path)
        if cached and cached.get("key") == key:
            self._remember(cached)
            return {**cached, "cached": True}
        try:
            record = self._build_package(spec, infos, key)
        except Exception as e:  # one broken package (bad zip, bad XML, failed download) must not stop the build
            return {**base, "version": infos[0].version, "status": "failed", "reason": f"{type(e).__name__}: {e}"}
        _write_json(record_path, record)
        shutil.rmtree(self.cache / "work" / spec.package, ignore_errors=True)
        return {**record, "cached": False}

    def _remember(self, record: dict) -> None:
        for clip in record["clips"]:
            self.seen.setdefault(clip["key"], clip["origin"])

    def _unpack(self, spec: SourceSpec, infos: list[PackageInfo], key: str) -> Path:
        root = self.cache / "work" / spec.package
        marker = root / ".unpacked"
        if marker.is_file() and marker.read_text() == key:
            return root
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for info in infos[1:] if spec.pypi else infos:
            deb = fetch(self.options.archive, info, self.cache / "debs")
            extract(deb, root)
            self.stats["packages_unpacked"] += 1
        marker.write_text(key)
        return root

    def _build_package(self, spec: SourceSpec, infos: list[PackageInfo], key: str) -> dict:
        root = self._unpack(spec, infos, key)
        copyright = read_package_copyright(root, spec.package)
        items, dropped = spec.reader(root, spec, copyright)
        dropped = [list(d) for d in dropped]
        if spec.split in CORPUS_SPLITS:
            dropped += [[i.name, f"licence {i.licence} excluded: {EXCLUDED_LICENCES[i.licence]}"]
                        for i in items if i.licence in EXCLUDED_LICENCES]
            items = [i for i in items if i.licence not in EXCLUDED_LICENCES]
        version = infos[0].version
        source = f"debian:{spec.package}@{version}"
        clips = []
        for item, clip_key, result in self._process(spec, items):
            if result["status"] != "kept":
                dropped.append([item.name, result["reason"]])
                continue
            clip = Clip(
                path=f"clips/{spec.package}/{clip_key[:24]}.flac", captions=item.captions, labels=item.labels,
                split=spec.split, source=source, licence=item.licence, duration=result["duration"],
                sample_rate=self.options.params.sample_rate, sha256=result["sha256"],
                extra={"origin": item.name, **item.extra},
            )
            clips.append({**json.loads(clip.to_json()), "key": clip_key})
        return {"key": key, "package": spec.package, "split": spec.split, "version": version,
                "status": "ok", "clips": clips, "dropped": dropped}

    def _source_hash(self, item: Item, file_hashes: dict[str, str]) -> str:
        """The file's SHA256, or for a rendered source the SHA256s of the files it reads (a SoundFont)
        and its identity."""
        if isinstance(item.source, str):
            return file_sha256(Path(item.source))
        for path in item.source.inputs():
            if path not in file_hashes:
                file_hashes[path] = file_sha256(Path(path))
        return _digest(*(file_hashes[p] for p in item.source.inputs()), item.source.identity())

    def _process(self, spec: SourceSpec, items: list[Item]) -> Iterable[tuple[Item, str, dict]]:
        """Yield (item, clip key, result) in item order, decoding only clips not cached."""
        params, file_hashes, pending = self.options.params, {}, []
        for item in items:
            clip_key = _digest(self._source_hash(item, file_hashes), params.fingerprint())
            first = self.seen.setdefault(clip_key, item.name)
            if first != item.name:
                reason = f"duplicate of an earlier file: {first}"
                pending.append((item, clip_key, {"status": "dropped", "reason": reason}))
                continue
            result_path = self.cache / "clips" / clip_key[:2] / f"{clip_key}.json"
            out_path = self.options.out / "clips" / spec.package / f"{clip_key[:24]}.flac"
            result = _read_json(result_path)
            if result and _reusable(result, out_path):
                pending.append((item, clip_key, result))
                continue
            future = self.executor.submit(audio.process, item.source, str(out_path), params)
            pending.append((item, clip_key, (future, result_path)))
        for item, clip_key, result in _progress(pending, desc=spec.package, unit="clip"):
            if isinstance(result, tuple):
                future, result_path = result
                try:
                    result = future.result()
                except MissingTool:
                    raise
                except Exception as e:  # a worker crash on one file must not stop the package
                    result = {"status": "dropped", "reason": f"processing error: {type(e).__name__}: {e}"}
                _write_json(result_path, result)
                self.stats["clips_processed"] += 1
            yield item, clip_key, result


def _reusable(result: dict, out_path: Path) -> bool:
    """A cached clip result stands unless its clip file is gone, or it is a drop for a missing renderer,
    which builds before rules version 3 cached as if the clip were bad."""
    if result["status"] == "kept":
        return out_path.is_file()
    return not any(cause in result["reason"] for cause in ("is not installed", "No module named"))


def python_distributions(specs: list[SourceSpec]) -> dict[str, PackageInfo]:
    """Version and a SHA256 of the installed files' RECORD of each source read from a Python package."""
    found = {}
    for spec in (s for s in specs if s.pypi):
        try:
            distribution = importlib.metadata.distribution(spec.pypi)
        except importlib.metadata.PackageNotFoundError:
            continue
        record = distribution.read_text("RECORD") or distribution.version
        found[spec.package] = PackageInfo(spec.package, distribution.version, _digest(record))
    return found


def fsdd_clips(folder: Path) -> tuple[list[Clip], str]:
    """FSDD spoken digits read in place (absolute paths); licence from its README."""
    readme = (folder / "README.md").read_text(encoding="utf-8")
    match = re.search(r"Licen[cs]e:\s*(.+)", readme)
    licence = guess_licence(match.group(1)) if match else "unknown"
    clips = []
    for path in sorted((folder / "recordings").glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        word = DIGITS[int(digit)]
        info = audio_info(path)
        clips.append(Clip(
            path=str(path.resolve()), captions=[caption("digit", path.name, phrase=word)], labels=[word],
            split="eval_digits", source="fsdd", licence=licence, duration=round(info.duration, 4),
            sample_rate=info.sample_rate, sha256=file_sha256(path),
            extra={"speaker": speaker, "take": int(take)},
        ))
    return clips, licence


def _summary(records: list[dict]) -> dict:
    sources, splits = {}, {}
    for record in records:
        hours = sum(c["duration"] for c in record["clips"]) / 3600
        sources[record["package"]] = {
            "split": record["split"], "version": record["version"], "status": record["status"],
            "reason": record.get("reason", ""), "cached": record.get("cached", False),
            "kept": len(record["clips"]), "hours": round(hours, 4),
            "dropped": dict(Counter(_short_reason(r) for _, r in record["dropped"])),
            "dropped_files": record["dropped"],
            "licences": dict(Counter(c["licence"] for c in record["clips"])),
        }
        split = splits.setdefault(record["split"], {"clips": 0, "hours": 0.0, "sources": []})
        split["clips"] += len(record["clips"])
        split["hours"] = round(split["hours"] + hours, 4)
        split["sources"].append(record["package"])
    return {"sources": sources, "splits": splits}


def format_report(report: dict) -> str:
    """A plain-text table of the report (one line per source, then per split)."""
    lines = [f"{'source':32} {'split':12} {'kept':>6} {'dropped':>7} {'hours':>7}  notes"]
    for name, s in report["sources"].items():
        notes = s["reason"] or ", ".join(f"{k}: {v}" for k, v in s["dropped"].items())
        notes = ("cached; " if s["cached"] else "") + (notes if s["status"] == "ok" else f"{s['status']}: {notes}")
        dropped = sum(s["dropped"].values())
        lines.append(f"{name:32} {s['split']:12} {s['kept']:>6} {dropped:>7} {s['hours']:>7.3f}  {notes}")
    lines.append("")
    for name, s in report["splits"].items():
        lines.append(f"split {name:26} {s['clips']:>6} clips {s['hours']:>8.3f} h  ({', '.join(s['sources'])})")
    lines.append(f"wall time {report['wall_seconds']:.1f} s")
    return "\n".join(lines)


def build(options: BuildOptions) -> dict:
    """Build the corpus described by ``options``; returns the report (also written as JSON)."""
    started = time.monotonic()
    specs = resolve_sources(options.sources)
    if options.eval_sets:
        specs += [s for s in EVAL_SOURCES.values() if s not in specs]
    for spec in specs:
        for name in (spec.package, *spec.metadata):
            refuse_reserved(name)
    options.out.mkdir(parents=True, exist_ok=True)
    executor = InlineExecutor() if options.jobs <= 1 else ProcessPoolExecutor(options.jobs)
    builder = Builder(options, executor)
    try:
        debian = [name for spec in specs for name in ((*spec.metadata,) if spec.pypi else (spec.package, *spec.metadata))]
        known = {**options.archive.lookup(debian), **python_distributions(specs)}
        records = [builder.package_record(spec, known) for spec in _progress(specs, desc="packages", unit="pkg")]
    finally:
        executor.shutdown()
    manifests: dict[str, list[Clip]] = {}
    for record in records:
        name = "manifest" if record["split"] in CORPUS_SPLITS else record["split"]
        manifests.setdefault(name, []).extend(Clip(**_clip_fields(c)) for c in record["clips"])
    if options.eval_sets:
        records.append(_fsdd_record(options.fsdd, manifests))
    for name, clips in manifests.items():
        write_manifest(options.out / f"{name}.jsonl", clips)
    report = {**_summary(records), "params": vars(options.params), "work": dict(builder.stats),
              "wall_seconds": round(time.monotonic() - started, 1)}
    _write_json(options.out / options.report_name, report)
    return report


def _fsdd_record(folder: Path | None, manifests: dict[str, list[Clip]]) -> dict:
    record = {"package": "fsdd", "split": "eval_digits", "version": "", "status": "ok", "dropped": [], "clips": []}
    if folder is None:
        return {**record, "status": "skipped", "reason": "no FSDD folder given"}
    try:
        clips, _ = fsdd_clips(folder)
    except (OSError, ValueError) as e:
        return {**record, "status": "skipped", "reason": f"FSDD not readable at {folder}: {e}"}
    manifests["eval_digits"] = clips
    return {**record, "clips": [{"duration": c.duration, "licence": c.licence} for c in clips]}


def _clip_fields(record: dict) -> dict:
    fields = {k: record[k] for k in ("path", "captions", "labels", "split", "source", "licence", "duration",
                                     "sample_rate", "sha256")}
    fields["extra"] = {k: v for k, v in record.items() if k not in fields and k != "key"}
    return fields
