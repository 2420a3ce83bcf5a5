"""Audio pretraining (``--stage audio-pretrain``), the paper's HTSAT-22 recipe after Pengi: audio
encoder -> mapper (a prefix of P embeddings) -> causal decoder that answers the question of a task
drawn per clip (:mod:`clapkit.train.tasks`), trained with next-token cross-entropy on the answer.

The engine (:mod:`clapkit.train.engine`) runs it like contrastive training: same data order,
checkpoints, exact resume, DDP, progress and curves. This module holds what differs: the parts
of the model the stage does not train, the batch's token sequences, and validation by task.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import torch
from torch import nn

from ..errors import UsageError
from ..models.clapcap import ClapCap, question_sequences
from .data import Batch, ValData
from .tasks import TaskMixture

VAL_QUESTIONS_PER_PASS = 256


def freeze_unused(model: ClapCap) -> None:
    """What the answer loss never reaches keeps its weights (and DDP sees no parameter without a
    gradient): the contrastive logit scales and any text tower."""
    for name in ("text", "text_projection", "logit_scale", "logit_scale_text", "logit_bias"):
        unused = getattr(model.clap, name, None)
        if unused is not None:
            unused.requires_grad_(False)


def batch_sequences(tokenizer, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's ``input_ids`` and ``targets`` (:func:`clapkit.models.clapcap.question_sequences`)."""
    input_ids, targets = question_sequences(tokenizer, batch.prompts, batch.captions)
    return input_ids.to(device), targets.to(device)


def print_mixture(mixture: TaskMixture, records: list, say) -> list[dict]:
    """The tasks, how many training clips can answer each and each one's expected share of questions."""
    rows = [{"task": task, "clips": clips, "share": share} for task, clips, share in mixture.summary(records)]
    say("audio-pretrain tasks (clips that can answer / expected share of questions): " +
        ", ".join(f"{r['task']} {r['clips']:,} / {r['share']:.1%}" for r in rows))
    return rows


@torch.no_grad()
def validate_answers(model: ClapCap, tokenizer, val: ValData, mixture: TaskMixture) -> dict:
    """Every question each validation clip can answer (captions: its first), teacher-forced: the
    token loss and the exact-match accuracy per task (all answer tokens argmax-correct, which is
    exactly when greedy decoding gives the answer), beside ``majority``: the accuracy of always
    giving the task's most common validation answer."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, tokens, correct = Counter(), Counter(), Counter()
    answers: dict[str, Counter] = defaultdict(Counter)
    for batch in val.batches():
        prefix = model.prefix(batch.waveforms.to(device))
        rows = [(row, q) for row, index in enumerate(batch.indices) for q in mixture.questions(val.clips[index].fields)]
        for start in range(0, len(rows), VAL_QUESTIONS_PER_PASS):
            part = rows[start:start + VAL_QUESTIONS_PER_PASS]
            questions = [q for _, q in part]
            input_ids, targets = question_sequences(tokenizer, [q.prompt for q in questions],
                                                    [q.answer for q in questions])
            input_ids, targets = input_ids.to(device), targets.to(device)
            positions = targets != -100
            logits = model.decode(prefix[[row for row, _ in part]], input_ids, positions).float()
            wanted = targets[positions]
            row_of = positions.nonzero()[:, 0]
            losses = torch.zeros(len(part), device=device).index_add_(
                0, row_of, nn.functional.cross_entropy(logits, wanted, reduction="none"))
            wrong = torch.zeros(len(part), device=device).index_add_(0, row_of, (logits.argmax(-1) != wanted).float())
            for q, loss, n, bad in zip(questions, losses.tolist(), positions.sum(1).tolist(), wrong.tolist()):
                loss_sum[q.task] += loss
                tokens[q.task] += n
                correct[q.task] += bad == 0
                answers[q.task][q.answer] += 1
    if not tokens:
        raise UsageError(f"--val: no clip of {', '.join(map(str, val.names[:1]))}… answers any task of the mixture")
    tasks = {task: {"loss": loss_sum[task] / tokens[task], "accuracy": correct[task] / sum(answers[task].values()),
                    "majority": answers[task].most_common(1)[0][1] / sum(answers[task].values()),
                    "questions": sum(answers[task].values())} for task in mixture.weights if tokens[task]}
    questions = sum(t["questions"] for t in tasks.values())
    return {"val_loss": sum(loss_sum.values()) / sum(tokens.values()), "clips": len(val), "questions": questions,
            "accuracy": sum(correct.values()) / questions, "tasks": tasks}
