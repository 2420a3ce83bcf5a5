"""Run tasks on one model: embed (through the cache), score zero-shot, compute each metric with a
seeded bootstrap confidence interval over clips. Also the linear probe and captioning."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import ClapkitError, one_line
from . import metrics as M
from .cache import EmbeddingCache
from .data import MissingData, TaskData, load_task_data
from .tasks import Task


@dataclass
class Result:
    """One figure of the report (``results.json`` entries)."""

    name: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    status: str
    paper: float | None = None
    paper_2022: float | None = None
    task: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskOutcome:
    """A task's figures, plus what the plots need (scores and targets)."""

    task: Task
    results: list[Result]
    classes: list[str] = field(default_factory=list)
    predictions: np.ndarray | None = None
    targets: np.ndarray | None = None
    ranks: dict[str, np.ndarray] = field(default_factory=dict)


def skipped(task: Task, reason: str, status: str = "skipped") -> TaskOutcome:
    return TaskOutcome(task, [Result(task.title, m, None, None, None, 0, f"{status}: {reason}",
                                     task.paper.get(m), task.paper_2022.get(m), task.name, task.note)
                              for m in task.metrics])


class Evaluator:
    """``Evaluator(pipeline, data_root, ...).run(tasks)`` -> list of :class:`TaskOutcome`."""

    def __init__(self, pipeline, data_root: Path, *, templates: Sequence[str] | None = None,
                 cache: EmbeddingCache, batch_size: int = 32, resamples: int = 1000, seed: int = 0,
                 probe: bool = False, show_progress: bool = True) -> None:
        self.pipeline, self.data_root, self.templates = pipeline, Path(data_root), list(templates or [])
        self.cache, self.batch_size, self.resamples, self.seed = cache, batch_size, resamples, seed
        self.probe, self.show_progress = probe, show_progress
        self.computed = 0  # audio embeddings computed (not from the cache) in this run

    def run(self, tasks: Sequence[Task]) -> list[TaskOutcome]:
        return [self.run_task(task) for task in tasks]

    def run_task(self, task: Task) -> TaskOutcome:
        try:
            if task.kind == "caption" and self.pipeline.config.caption is None:
                return skipped(task, f"{self.pipeline.name} has no caption decoder (use a captioning model)")
            if task.kind != "caption" and self.pipeline.config.text is None:
                return skipped(task, f"{self.pipeline.name} has no text tower")
            data = load_task_data(task, self.data_root)
            if task.kind == "caption":
                return self.caption(task, data)
            audio, kept, failed = self.audio_embeddings(task, data)
            if task.kind == "retrieval":
                return self.retrieval(task, data, audio, kept, failed)
            return self.classification(task, data, audio, kept, failed)
        except MissingData as e:
            return skipped(task, one_line(e).removeprefix(f"{task.name}: "))
        except ClapkitError as e:
            return skipped(task, one_line(e), status="failed")

    # ---- embeddings ---------------------------------------------------------------------------
    def audio_embeddings(self, task: Task, data: TaskData) -> tuple[np.ndarray, np.ndarray, list[str]]:
        with tqdm(total=len(data.paths), desc=f"{task.name}: audio", unit="clip", disable=not self.show_progress,
                  leave=False) as bar:
            embeddings, errors, computed = self.cache.embed(self.pipeline, data.paths, data.sha256,
                                                            self.batch_size, bar.update)
        self.computed += computed
        kept = np.array(sorted(embeddings), dtype=int)
        failed = [errors[i] for i in sorted(errors)] + data.skipped
        if not len(kept):
            raise MissingData(f"{task.name}: none of the {len(data.paths)} test clips could be read")
        return np.stack([embeddings[i] for i in kept]), kept, failed

    def class_embeddings(self, task: Task, classes: list[str]) -> np.ndarray:
        """One normalised text embedding per class: the mean over the templates (prompt ensembling)."""
        templates = self.templates or [task.template]
        per_template = [self.pipeline.embed_text([t.format(task.label_text(c)) for c in classes]) for t in templates]
        return F.normalize(torch.stack(per_template).mean(0), dim=-1).numpy()

    def logits(self, audio: np.ndarray, text: np.ndarray) -> np.ndarray:
        return self.pipeline.similarity(torch.from_numpy(audio), torch.from_numpy(text)).numpy().astype(np.float64)

    # ---- tasks --------------------------------------------------------------------------------
    def classification(self, task: Task, data: TaskData, audio: np.ndarray, kept: np.ndarray,
                       failed: list[str]) -> TaskOutcome:
        logits = self.logits(audio, self.class_embeddings(task, data.classes))
        n = len(kept)
        if task.kind == "single":
            labels = np.array([data.targets[i] for i in kept])
            probs = torch.from_numpy(logits).softmax(-1).numpy()
            correct = M.per_clip_correct(labels, probs)
            figures = {"accuracy": (float(correct.mean()), lambda idx: float(correct[idx].mean()))}
            outcome_targets = labels
        else:
            targets = np.zeros((n, len(data.classes)), dtype=np.int64)
            for row, i in enumerate(kept):
                targets[row, data.targets[i]] = 1
            probs = 1 / (1 + np.exp(-logits))
            figures = {"mAP": (M.average_precision(targets, probs), lambda idx: M.average_precision(targets[idx], probs[idx])),
                       "F1": (M.f1_top1(targets, probs), lambda idx: M.f1_top1(targets[idx], probs[idx]))}
            outcome_targets = targets
        results = [self._result(task, metric, *figures[metric], n, failed) for metric in task.metrics]
        if self.probe and task.kind == "single":
            results.append(self.linear_probe(task, audio, np.array([data.targets[i] for i in kept]), failed))
        return TaskOutcome(task, results, data.classes, probs, outcome_targets)

    def retrieval(self, task: Task, data: TaskData, audio: np.ndarray, kept: np.ndarray,
                  failed: list[str]) -> TaskOutcome:
        captions = [c for i in kept for c in data.targets[i]]
        caption_clip = np.array([row for row, i in enumerate(kept) for _ in data.targets[i]])
        text = self.pipeline.embed_text(captions, batch_size=256).numpy()
        similarity = audio.astype(np.float64) @ text.astype(np.float64).T  # cosine: both normalised
        n = len(kept)
        if task.direction == "t2a":
            rank = M.text_to_audio_ranks(similarity.T, caption_clip)
            by_clip = [np.flatnonzero(caption_clip == c) for c in range(n)]

            def pooled(values: np.ndarray):  # per-caption values, resampled by clip
                return lambda idx: float(np.mean(np.concatenate([values[by_clip[c]] for c in idx])))

            per_query = {f"R@{k}": M.recall_at(rank, k) for k in (1, 5, 10)}
            per_query["mAP@10"] = M.reciprocal_rank_at_10(rank)
            figures = {m: (float(v.mean()), pooled(v)) for m, v in per_query.items()}
            ranks = {"t2a": rank}
        else:
            clip_ranks = M.audio_to_text_ranks(similarity, caption_clip)
            first = np.array([r[0] for r in clip_ranks])
            per_clip = {f"R@{k}": M.recall_at(first, k) for k in (1, 5, 10)}
            per_clip["mAP@10"] = np.array([M.ap_at_10(r) for r in clip_ranks])
            figures = {m: (float(v.mean()), lambda idx, v=v: float(v[idx].mean())) for m, v in per_clip.items()}
            ranks = {"a2t": first}
        results = [self._result(task, metric, *figures[metric], n, failed) for metric in task.metrics]
        return TaskOutcome(task, results, ranks=ranks)

    def caption(self, task: Task, data: TaskData) -> TaskOutcome:
        try:
            from aac_metrics import evaluate as aac_evaluate
        except ImportError:
            return skipped(task, "the aac-metrics package is not installed (pip install aac-metrics)")
        candidates, references, failed = [], [], []
        for path, captions in tqdm(list(zip(data.paths, data.targets)), desc=f"{task.name}: captions",
                                   disable=not self.show_progress, leave=False):
            try:
                candidates.append(self.pipeline.caption([path])[0])
                references.append(captions)
            except ClapkitError as e:
                failed.append(one_line(e))
        corpus, _ = aac_evaluate(candidates, references, metrics=["cider_d", "spice", "spider"])
        names = {"CIDEr-D": "cider_d", "SPICE": "spice", "SPIDEr": "spider"}
        return TaskOutcome(task, [Result(task.title, m, float(corpus[names[m]]), None, None, len(candidates),
                                         _status(failed), task.paper.get(m), task.paper_2022.get(m), task.name,
                                         task.note) for m in task.metrics])

    def linear_probe(self, task: Task, audio: np.ndarray, labels: np.ndarray, failed: list[str]) -> Result:
        """Logistic regression on the frozen audio embeddings, stratified k-fold cross-validation over
        the test clips (seeded; k = 5, or fewer when a class has fewer clips); classes with a single
        clip are left out."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        counts = np.bincount(labels)
        usable = counts[labels] >= 2
        x, y = audio[usable], labels[usable]
        if len(np.unique(y)) < 2:
            return Result(task.title, "probe accuracy", None, None, None, 0,
                          "skipped: fewer than two classes with two or more clips", None, None, task.name)
        folds = int(min(5, counts[counts >= 2].min()))
        predicted = np.empty_like(y)
        with warnings.catch_warnings():  # many classes with few clips each: sklearn's advice is noise here
            warnings.simplefilter("ignore")
            for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(x, y):
                classifier = LogisticRegression(max_iter=2000, C=1.0).fit(x[train], y[train])
                predicted[test] = classifier.predict(x[test])
        correct = (predicted == y).astype(np.float64)
        value = float(correct.mean())
        low, high = M.bootstrap_interval(lambda idx: float(correct[idx].mean()), len(correct),
                                         resamples=self.resamples, seed=self.seed)
        return Result(task.title, "probe accuracy", value, low, high, len(correct), _status(failed), None, None,
                      task.name, f"logistic regression, {folds}-fold stratified cross-validation on the test clips")

    def _result(self, task: Task, metric: str, value: float, statistic, n: int, failed: list[str]) -> Result:
        low, high = M.bootstrap_interval(statistic, n, resamples=self.resamples, seed=self.seed)
        return Result(task.title, metric, value, low, high, n, _status(failed), task.paper.get(metric),
                      task.paper_2022.get(metric), task.name, task.note)


def _status(failed: list[str]) -> str:
    if not failed:
        return "ok"
    return f"ok ({len(failed)} clip(s) unreadable, left out; first: {failed[0][:160]})"
