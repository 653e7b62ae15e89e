"""Consensus for the platform: Dawid–Skene over each dataset's labels, STAPLE over each image's
contours, player skill, and retirement of settled images.

The numerics live in `ml/` (framework-free); this module loads answers from the database, maps
ids to the 0-based codes `ml` expects, and writes `Consensus`, `PlayerSkill`, `ConsensusMask` and
`ReviewItem` rows. Label submissions call `consensus_labels_added`, which queues an incremental
update after commit once a dataset has `consensus_every` new labels (one queued at a time); a
scheduled full refit (`consensus_refit`) keeps the incremental state exact.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from PIL import Image as PILImage

from annotate.models import (
    Annotation,
    Consensus,
    ConsensusMask,
    ConsensusMethod,
    ConsensusModelState,
    ConsensusRun,
    Dataset,
    Image,
    PlayerSkill,
    ReviewItem,
)

logger = logging.getLogger(__name__)

# Images whose labels count: in play or retired. Withdrawn, quarantined and unusable ones do not.
COUNTED_STATUSES = (Image.Status.ACTIVE, Image.Status.RETIRED)

# Flags for people to look at (bot detection, spammer lists); they never change a player's
# weight, which is the model's own confusion matrix.
SPAMMER_SCORE_BELOW = 0.05
FLAG_MIN_LABELS = 10
TOO_FAST_SHARE = 0.2


@dataclass(frozen=True)
class Answers:
    """A dataset's counted labels as parallel code arrays, with the ids behind the codes."""

    annotation_ids: np.ndarray  # (n_answers,)
    tasks: np.ndarray  # (n_answers,) codes into image_ids
    workers: np.ndarray  # (n_answers,) codes into player_ids
    labels: np.ndarray  # (n_answers,) class codes
    image_ids: np.ndarray  # (n_tasks,)
    player_ids: np.ndarray  # (n_workers,)
    gold: np.ndarray  # (n_tasks,) class code or -1
    class_ids: list[int]


def _class_ids(dataset: Dataset) -> list[int]:
    return list(dataset.classes.order_by("order").values_list("id", flat=True))


def answers_load(*, dataset: Dataset) -> Answers:
    """Every counted label of `dataset` plus the gold classes, as code arrays for `ml`."""
    class_ids = _class_ids(dataset)
    class_code = {cid: code for code, cid in enumerate(class_ids)}
    rows = np.array(
        list(
            Annotation.objects.filter(
                image__dataset=dataset,
                image__status__in=COUNTED_STATUSES,
                is_counted=True,
                label_class__isnull=False,
            )
            .order_by("id")
            .values_list("id", "image_id", "player_id", "label_class_id")
        ),
        dtype=np.int64,
    ).reshape(-1, 4)
    gold_rows = list(
        Image.objects.filter(
            dataset=dataset, status__in=COUNTED_STATUSES, gold_class__isnull=False
        ).values_list("id", "gold_class_id")
    )
    image_ids = np.unique(
        np.concatenate([rows[:, 1], np.array([g[0] for g in gold_rows], dtype=np.int64)])
    )
    player_ids, workers = np.unique(rows[:, 2], return_inverse=True)
    gold = np.full(len(image_ids), -1, dtype=np.int64)
    if gold_rows:
        positions = np.searchsorted(image_ids, [g[0] for g in gold_rows])
        gold[positions] = [class_code[g[1]] for g in gold_rows]
    lookup = np.vectorize(class_code.__getitem__, otypes=[np.int64])
    return Answers(
        annotation_ids=rows[:, 0],
        tasks=np.searchsorted(image_ids, rows[:, 1]),
        workers=workers.astype(np.int64),
        labels=lookup(rows[:, 3]) if len(rows) else np.zeros(0, dtype=np.int64),
        image_ids=image_ids,
        player_ids=player_ids,
        gold=gold,
        class_ids=class_ids,
    )


def _fit(method: str, answers: Answers):  # type: ignore[no-untyped-def]
    from ml.dawid_skene import fit_dawid_skene, fit_one_coin
    from ml.majority import majority_vote

    fit = {
        ConsensusMethod.DAWID_SKENE: fit_dawid_skene,
        ConsensusMethod.ONE_COIN: fit_one_coin,
        ConsensusMethod.MAJORITY: majority_vote,
    }[method]
    return fit(
        answers.tasks,
        answers.workers,
        answers.labels,
        n_tasks=len(answers.image_ids),
        n_workers=len(answers.player_ids),
        n_classes=len(answers.class_ids),
        gold=answers.gold,
    )


@transaction.atomic
def consensus_refit(*, dataset_id: int) -> ConsensusRun:
    """Full consensus of one dataset from every counted label; resets the incremental state."""
    from ml import incremental

    state_row = _lock_state(dataset_id)
    dataset = state_row.dataset
    started = timezone.now()
    answers = answers_load(dataset=dataset)
    if dataset.consensus_method == ConsensusMethod.DAWID_SKENE:
        state = incremental.start(
            answers.tasks,
            answers.workers,
            answers.labels,
            n_tasks=len(answers.image_ids),
            n_workers=len(answers.player_ids),
            n_classes=len(answers.class_ids),
            gold=answers.gold,
        )
        result = state.result()
        fit_info = (0, True, None)
        full = _fit(ConsensusMethod.DAWID_SKENE, answers) if len(answers.tasks) else None
        if full is not None:
            fit_info = (
                full.n_iter,
                full.converged,
                full.log_likelihood[-1] if full.log_likelihood else None,
            )
        state_row.state = _state_dump(state, answers)
    else:
        result = _fit(dataset.consensus_method, answers)
        fit_info = (
            result.n_iter,
            result.converged,
            result.log_likelihood[-1] if result.log_likelihood else None,
        )
        state_row.state = b""
    state_row.watermark = int(answers.annotation_ids.max()) if len(answers.annotation_ids) else 0
    state_row.save(update_fields=["state", "watermark", "updated_at"])
    # Images whose labels stopped counting (withdrawn, unusable) lose their consensus.
    labelled = answers.image_ids[np.bincount(answers.tasks, minlength=len(answers.image_ids)) > 0]
    Consensus.objects.filter(image__dataset=dataset).exclude(
        image_id__in=labelled.tolist()
    ).delete()
    return _write(
        dataset=dataset,
        kind=ConsensusRun.Kind.FULL,
        answers=answers,
        result=result,
        started=started,
        fit_info=fit_info,
        touched_tasks=np.arange(len(answers.image_ids)),
    )


@transaction.atomic
def consensus_update(*, dataset_id: int) -> ConsensusRun:
    """Fold the labels added since the last run into the dataset's consensus without a refit.

    Only the images that got new labels, and the players who gave them, are rewritten. Falls
    back to a full refit when there is no incremental state (first run, another method, or a
    withdrawal/clinician decision cleared it).
    """
    from ml import incremental

    state_row = _lock_state(dataset_id)
    dataset = state_row.dataset
    if dataset.consensus_method != ConsensusMethod.DAWID_SKENE or not state_row.state:
        return consensus_refit(dataset_id=dataset_id)
    started = timezone.now()
    state, known = _state_load(bytes(state_row.state))
    class_ids = _class_ids(dataset)
    if class_ids != known.class_ids:
        return consensus_refit(dataset_id=dataset_id)
    new = list(
        Annotation.objects.filter(
            image__dataset=dataset,
            image__status__in=COUNTED_STATUSES,
            is_counted=True,
            label_class__isnull=False,
            id__gt=state_row.watermark,
        )
        .order_by("id")
        .values_list("id", "image_id", "player_id", "label_class_id")
    )
    if not new:
        return _write(
            dataset=dataset,
            kind=ConsensusRun.Kind.INCREMENTAL,
            answers=known,
            result=state.result(),
            started=started,
            fit_info=(0, True, None),
            touched_tasks=np.zeros(0, dtype=np.int64),
        )
    rows = np.array(new, dtype=np.int64)
    image_ids, player_ids = (
        _extend_ids(known.image_ids, rows[:, 1]),
        _extend_ids(known.player_ids, rows[:, 2]),
    )
    task_code = {int(i): c for c, i in enumerate(image_ids)}
    player_code = {int(p): c for c, p in enumerate(player_ids)}
    class_code = {cid: code for code, cid in enumerate(class_ids)}
    tasks = np.array([task_code[int(i)] for i in rows[:, 1]], dtype=np.int64)
    gold = dict(
        Image.objects.filter(id__in=rows[:, 1].tolist(), gold_class__isnull=False).values_list(
            "id", "gold_class_id"
        )
    )
    state = incremental.add_answers(
        state,
        tasks,
        np.array([player_code[int(p)] for p in rows[:, 2]], dtype=np.int64),
        np.array([class_code[int(c)] for c in rows[:, 3]], dtype=np.int64),
        n_tasks=len(image_ids),
        n_workers=len(player_ids),
        gold={task_code[i]: class_code[c] for i, c in gold.items()},
    )
    gold_codes = np.full(len(image_ids), -1, dtype=np.int64)
    gold_codes[: len(known.gold)] = known.gold
    for image_id, class_id in gold.items():
        gold_codes[task_code[image_id]] = class_code[class_id]
    answers = Answers(
        annotation_ids=np.concatenate([known.annotation_ids, rows[:, 0]]),
        tasks=np.concatenate([known.tasks, tasks]),
        workers=np.concatenate([known.workers, [player_code[int(p)] for p in rows[:, 2]]]).astype(
            np.int64
        ),
        labels=np.concatenate([known.labels, [class_code[int(c)] for c in rows[:, 3]]]).astype(
            np.int64
        ),
        image_ids=image_ids,
        player_ids=player_ids,
        gold=gold_codes,
        class_ids=class_ids,
    )
    state_row.state = _state_dump(state, answers)
    state_row.watermark = int(rows[:, 0].max())
    state_row.save(update_fields=["state", "watermark", "updated_at"])
    return _write(
        dataset=dataset,
        kind=ConsensusRun.Kind.INCREMENTAL,
        answers=answers,
        result=state.result(),
        started=started,
        fit_info=(0, True, None),
        touched_tasks=np.unique(tasks),
    )


# The labels counted since a dataset's last run, and the mark of a queued update, live in the
# cache (Redis in production): a counter row in the database was one more committed UPDATE
# per label submission, and it waited for the row lock that a running update holds.
UPDATE_QUEUED_TTL = 600  # s: a lost task holds the next update back at most this long


def _cache_keys(dataset_id: int) -> tuple[str, str]:
    return f"consensus:new-labels:{dataset_id}", f"consensus:update-queued:{dataset_id}"


def _count_new_labels(dataset_id: int, n: int) -> int:
    """Add ``n`` to the dataset's counter; its new value."""
    counter, _ = _cache_keys(dataset_id)
    try:
        return cache.incr(counter, n)
    except ValueError:  # no counter yet (or the cache lost it)
        cache.add(counter, 0, timeout=None)
        return cache.incr(counter, n)


def _run_started(dataset_id: int) -> None:
    """A run has the dataset's lock: what it will read is no longer new, and labels from now on
    may queue the next update."""
    counter, queued = _cache_keys(dataset_id)
    cache.set(counter, 0, timeout=None)
    cache.delete(queued)


def consensus_labels_added(*, dataset_id: int, n: int, every: int | None = None) -> bool:
    """Count ``n`` new labels for a dataset; queue a consensus update (after commit) when due.

    Called by the label-submission service once its labels are committed. An update is due
    once the dataset has ``consensus_every`` new labels (``every``, read from the dataset when
    the caller does not know it) since its last run began, and is queued unless one already
    waits for a worker: one queued update per dataset at a time, however fast labels come.
    Returns whether an update was queued.
    """
    from annotate.tasks import consensus_update_task

    total = _count_new_labels(dataset_id, n)
    if every is None:
        every = Dataset.objects.values_list("consensus_every", flat=True).get(pk=dataset_id)
    if total < max(1, every):
        return False
    _, queued = _cache_keys(dataset_id)
    if not cache.add(queued, 1, timeout=UPDATE_QUEUED_TTL):
        return False
    consensus_update_task.delay_on_commit(dataset_id)
    return True


def consensus_invalidate(*, dataset_id: int) -> None:
    """Labels stopped counting or gold changed (withdrawal, clinician decision): the next update
    must be a full refit. Queues it after commit."""
    from annotate.tasks import consensus_refit_task

    if not Dataset.objects.filter(pk=dataset_id, task=Dataset.Task.CLASSIFICATION).exists():
        # Contours: STAPLE runs per image, so nothing spans the dataset; a withdrawn image's
        # masks went with it.
        return
    ConsensusModelState.objects.filter(dataset_id=dataset_id).update(state=b"")
    consensus_refit_task.delay_on_commit(dataset_id)


# --- writing results ------------------------------------------------------------------------------


def _lock_state(dataset_id: int) -> ConsensusModelState:
    """One consensus run per dataset at a time: the state row is the lock."""
    ConsensusModelState.objects.get_or_create(dataset_id=dataset_id)
    state_row = (
        ConsensusModelState.objects.select_for_update()
        .select_related("dataset")
        .get(dataset_id=dataset_id)
    )
    _run_started(dataset_id)
    return state_row


def _write(
    *,
    dataset: Dataset,
    kind: str,
    answers: Answers,
    result,  # type: ignore[no-untyped-def]
    started,  # type: ignore[no-untyped-def]
    fit_info: tuple[int, bool, float | None],
    touched_tasks: np.ndarray,
) -> ConsensusRun:
    from ml.skill import player_skill

    n_labels = np.bincount(answers.tasks, minlength=len(answers.image_ids))
    pairs = (
        np.unique(np.stack([answers.tasks, answers.workers], axis=1), axis=0)
        if len(answers.tasks)
        else np.zeros((0, 2), dtype=np.int64)
    )
    n_players = (
        np.bincount(pairs[:, 0], minlength=len(answers.image_ids)) if len(pairs) else n_labels * 0
    )
    run = ConsensusRun.objects.create(
        dataset=dataset,
        kind=kind,
        method=dataset.consensus_method,
        parameters=_parameters(dataset),
        n_answers=len(answers.tasks),
        n_images=len(answers.image_ids),
        n_players=len(answers.player_ids),
        n_iter=fit_info[0],
        converged=fit_info[1],
        log_likelihood=fit_info[2],
        started_at=started,
        finished_at=started,
    )
    classes = list(dataset.classes.order_by("order"))
    codes = [c.code for c in classes]
    # Only images with at least one label get a consensus row (gold-only images keep none).
    touched = [t for t in touched_tasks.tolist() if n_labels[t] > 0]
    rows = [
        Consensus(
            image_id=int(answers.image_ids[t]),
            label_class_id=classes[int(result.labels[t])].pk,
            posterior={
                code: round(float(p), 6)
                for code, p in zip(codes, result.posteriors[t], strict=True)
            },
            confidence=float(result.confidence[t]),
            n_labels=int(n_labels[t]),
            n_players=int(n_players[t]),
            run=run,
        )
        for t in touched
    ]
    Consensus.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["image"],
        update_fields=[
            "label_class",
            "posterior",
            "confidence",
            "n_labels",
            "n_players",
            "run",
            "updated_at",
        ],
    )
    touched_workers = np.unique(answers.workers[np.isin(answers.tasks, touched_tasks)])
    if len(touched_workers):
        _write_skills(dataset, answers, result, player_skill(result), touched_workers)
    settled, uncertain = _retire(dataset, [int(answers.image_ids[t]) for t in touched])
    run.n_retired, run.n_review_opened = len(settled) + len(uncertain), len(uncertain)
    run.settled_image_ids, run.finished_at = settled, timezone.now()
    run.save(update_fields=["n_retired", "n_review_opened", "settled_image_ids", "finished_at"])
    logger.info(
        "consensus %s %s: %s answers, %s images written, %s retired, %s to review",
        dataset.slug,
        kind,
        len(answers.tasks),
        len(rows),
        run.n_retired,
        run.n_review_opened,
    )
    return run


def _parameters(dataset: Dataset) -> dict:
    from ml.dawid_skene import DEFAULT_PRIOR_SMOOTHING, DEFAULT_SMOOTHING

    return {
        "smoothing": DEFAULT_SMOOTHING,
        "prior_smoothing": DEFAULT_PRIOR_SMOOTHING,
        "tol": 1e-6,
        "max_iter": 100,
        "retire_confidence": dataset.retire_confidence,
        "retire_min_labels": dataset.retire_min_labels,
        "max_labels": dataset.max_labels,
    }


def _write_skills(dataset: Dataset, answers: Answers, result, skill, workers) -> None:  # type: ignore[no-untyped-def]
    min_ms = settings.MIN_HUMAN_RESPONSE_MS
    player_ids = [int(answers.player_ids[w]) for w in workers]
    stats = {
        row["player_id"]: row
        for row in Annotation.objects.filter(
            image__dataset=dataset, player_id__in=player_ids, label_class__isnull=False
        )
        .values("player_id")
        .annotate(
            n_gold=Count("id", filter=Q(image__gold_class__isnull=False)),
            n_gold_correct=Count("id", filter=Q(image__gold_class=F("label_class"))),
            n_too_fast=Count("id", filter=Q(response_ms__lt=min_ms)),
            n_total=Count("id"),
        )
    }
    rows = []
    for w, player_id in zip(workers, player_ids, strict=True):
        s = stats.get(player_id, {})
        n_labels = int(np.count_nonzero(answers.workers == w))
        reasons = []
        if n_labels >= FLAG_MIN_LABELS and skill.spammer_score[w] < SPAMMER_SCORE_BELOW:
            reasons.append("answers do not depend on the image (spammer)")
        if bool(skill.adversarial[w]):
            reasons.append("answers systematically wrong (adversarial)")
        too_fast = int(s.get("n_too_fast", 0))
        if s.get("n_total", 0) >= FLAG_MIN_LABELS and too_fast > TOO_FAST_SHARE * s["n_total"]:
            reasons.append("answers faster than a human can judge")
        rows.append(
            PlayerSkill(
                player_id=player_id,
                dataset=dataset,
                confusion=np.round(result.confusion[w], 6).tolist(),
                accuracy=float(skill.accuracy[w]),
                balanced_accuracy=float(skill.balanced_accuracy[w]),
                spammer_score=float(skill.spammer_score[w]),
                information_bits=float(skill.information_bits[w]),
                adversarial_probability=float(skill.adversarial_probability[w]),
                n_labels=n_labels,
                n_gold=int(s.get("n_gold", 0)),
                n_gold_correct=int(s.get("n_gold_correct", 0)),
                n_too_fast=too_fast,
                is_flagged=bool(reasons),
                flag_reasons=reasons,
            )
        )
    PlayerSkill.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["player", "dataset"],
        update_fields=[
            "confusion",
            "accuracy",
            "balanced_accuracy",
            "spammer_score",
            "information_bits",
            "adversarial_probability",
            "n_labels",
            "n_gold",
            "n_gold_correct",
            "n_too_fast",
            "is_flagged",
            "flag_reasons",
            "updated_at",
        ],
    )


def _retire(dataset: Dataset, image_ids: list[int]) -> tuple[list[int], list[int]]:
    """Stop serving settled images; send the ones still uncertain at the label limit to review.

    Gold images stay in play: they are what scores players. Returns the ids retired with a
    confident consensus and those retired uncertain (now waiting for a clinician).
    """
    candidates = Consensus.objects.filter(
        image_id__in=image_ids, image__status=Image.Status.ACTIVE, image__gold_class__isnull=True
    )
    confident = Q(
        confidence__gte=dataset.retire_confidence, n_labels__gte=dataset.retire_min_labels
    )
    at_limit = Q(n_labels__gte=dataset.max_labels)
    settle = list(
        candidates.filter(confident | at_limit).values_list("image_id", "confidence", "n_labels")
    )
    if not settle:
        return [], []
    Image.objects.filter(id__in=[s[0] for s in settle]).update(
        status=Image.Status.RETIRED, updated_at=timezone.now()
    )
    uncertain = [s for s in settle if s[1] < dataset.retire_confidence]
    ReviewItem.objects.bulk_create(
        [
            ReviewItem(
                image_id=image_id,
                reason=ReviewItem.Reason.UNCERTAIN,
                priority=1.0 - confidence,
                details={"confidence": round(confidence, 4), "n_labels": n},
            )
            for image_id, confidence, n in uncertain
        ],
        ignore_conflicts=True,
    )
    return [s[0] for s in settle if s[1] >= dataset.retire_confidence], [s[0] for s in uncertain]


# --- incremental state persistence ----------------------------------------------------------------


def _extend_ids(known: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`known` ids keep their codes; ids never seen get the next codes, in first-seen order."""
    fresh = [i for i in dict.fromkeys(new.tolist()) if i not in set(known.tolist())]
    return np.concatenate([known, np.array(fresh, dtype=np.int64)]) if fresh else known


def _state_dump(state, answers: Answers) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        tasks=state.tasks,
        workers=state.workers,
        labels=state.labels,
        gold=state.gold,
        posteriors=state.posteriors,
        counts=state.counts,
        class_counts=state.class_counts,
        pseudo=state.pseudo,
        scalars=np.array(
            [state.prior_smoothing, state.tol, state.max_iter, state.answers_since_refit]
        ),
        annotation_ids=answers.annotation_ids,
        image_ids=answers.image_ids,
        player_ids=answers.player_ids,
        class_ids=np.array(answers.class_ids, dtype=np.int64),
    )
    return buffer.getvalue()


def _state_load(blob: bytes):  # type: ignore[no-untyped-def]
    from ml.incremental import ConsensusState

    data = np.load(io.BytesIO(blob))
    prior_smoothing, tol, max_iter, since = data["scalars"].tolist()
    state = ConsensusState(
        tasks=data["tasks"],
        workers=data["workers"],
        labels=data["labels"],
        gold=data["gold"],
        posteriors=data["posteriors"],
        counts=data["counts"],
        class_counts=data["class_counts"],
        pseudo=data["pseudo"],
        prior_smoothing=prior_smoothing,
        tol=tol,
        max_iter=int(max_iter),
        answers_since_refit=int(since),
    )
    answers = Answers(
        annotation_ids=data["annotation_ids"],
        tasks=data["tasks"],
        workers=data["workers"],
        labels=data["labels"],
        image_ids=data["image_ids"],
        player_ids=data["player_ids"],
        gold=data["gold"],
        class_ids=data["class_ids"].tolist(),
    )
    return state, answers


# --- STAPLE for contours ----------------------------------------------------------------------------


def contour_geometry(
    points: Iterable[Sequence[float]], repairs: Iterable[str], **extra: Any
) -> dict:
    """The ``geometry`` of a stored contour annotation: a closed outline's vertices in image pixel
    coordinates and the repairs validation made (``games.engine.contours``); :func:`contour_points`
    reads it back."""
    return {
        "points": [[x, y] for x, y in points],
        "closed": True,
        "repairs": list(repairs),
        **extra,
    }


def contour_points(geometry: dict) -> np.ndarray:
    """Vertices (N, 2) in image pixel coordinates of a stored contour annotation."""
    return np.asarray(geometry["points"], dtype=np.float64).reshape(-1, 2)


def _png_bytes(array: np.ndarray, mode: str | None) -> bytes:
    out = io.BytesIO()
    image = PILImage.fromarray(array) if mode is None else PILImage.fromarray(array, mode=mode)
    image.save(out, format="PNG")
    return out.getvalue()


@transaction.atomic
def consensus_mask_update(*, image_id: int) -> ConsensusMask | None:
    """STAPLE consensus of every counted contour on one image; retires it when raters agree.

    Needs two contours at least (one rater has nothing to agree with). Returns None then.
    """
    from ml.raster import polygon_to_mask
    from ml.staple import staple

    image = Image.objects.select_for_update().select_related("dataset").get(pk=image_id)
    contours = list(
        Annotation.objects.filter(image=image, is_counted=True, geometry__isnull=False)
        .order_by("id")
        .values_list("player_id", "geometry")
    )
    if len(contours) < 2 or image.status not in COUNTED_STATUSES:
        return None
    masks = np.stack(
        [polygon_to_mask(contour_points(g), image.height, image.width) for _, g in contours]
    )
    result = staple(masks)
    consensus = result.mask()
    agreement = [_dice(m, consensus) for m in masks]
    quality = {
        str(player): {"sensitivity": round(float(se), 4), "specificity": round(float(sp), 4)}
        for (player, _), se, sp in zip(
            contours, result.sensitivity, result.specificity, strict=True
        )
    }
    record = ConsensusMask.objects.filter(image=image).first() or ConsensusMask(image=image)
    for field in ("probability", "mask"):
        old = getattr(record, field)
        if old:
            transaction.on_commit(lambda name=old.name, storage=old.storage: storage.delete(name))
    record.probability.save(
        "probability.png",
        ContentFile(_png_bytes(np.round(result.probability * 65535).astype(np.uint16), None)),
        save=False,
    )
    record.mask.save(
        "mask.png", ContentFile(_png_bytes(consensus.astype(np.uint8) * 255, "L")), save=False
    )
    record.n_contours = len(contours)
    record.n_players = len({p for p, _ in contours})
    record.mean_agreement = float(np.mean(agreement))
    record.rater_quality = quality
    record.save()
    dataset = image.dataset
    if (
        image.status == Image.Status.ACTIVE
        and image.gold_class_id is None
        and record.n_players >= dataset.retire_min_labels
        and record.mean_agreement >= dataset.retire_mask_agreement
    ):
        image.status = Image.Status.RETIRED
        image.save(update_fields=["status", "updated_at"])
    return record


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def consensus_settle_points(*, run: ConsensusRun) -> int:
    """Pay the delayed points of the images `run` settled; returns how many images paid out.

    Each label is paid at most once (games.scoring keeps one award per annotation), so a
    retried task pays nothing twice.
    """
    from games.scoring import delayed_points_award

    codes = list(run.dataset.classes.order_by("order").values_list("code", flat=True))
    rows = Consensus.objects.filter(image_id__in=run.settled_image_ids).select_related(
        "label_class"
    )
    paid = 0
    for row in rows:
        awarded = delayed_points_award(
            image_id=row.image_id,
            posterior=[row.posterior.get(code, 0.0) for code in codes],
            consensus_label=row.label_class.name,
        )
        paid += bool(awarded)
    return paid
