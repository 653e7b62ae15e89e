"""A simulated crowd for the demo datasets, so a newcomer finds consensus to look at.

Without it a fresh demo has images but no labels: no consensus, no player skills, no retired
images and an empty clinician queue. `load_demo` therefore adds labels from twelve simulated
volunteers (`demo-crowd-01` … `demo-crowd-12`, accounts without a usable password) whose answers
are drawn from confusion matrices (`ml.al.crowd`: mostly reliable, some noisy, two spammers and
an adversary) against the source datasets' expert labels. Most labelled images get three labels,
some five; a few hard ones (answers close to chance) reach the dataset's label limit, so
consensus retires some images and leaves others uncertain for a clinician. Then one full consensus run. Demo data only; idempotent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.roles import Role
from accounts.services import user_grant_role
from annotate.consensus import consensus_refit
from annotate.models import Annotation, Dataset, Image
from ml.al.crowd import CrowdSpec, draw_crowd

CROWD_PREFIX = "demo-crowd-"
CROWD_SIZE = 12
LABELLED_SHARE = 0.6
HARD_SIGNAL = 0.1  # share of a player's own judgement left on a hard image; the rest is chance
SPEC = CrowdSpec(
    n_players=CROWD_SIZE, share_noisy=0.25, share_spammers=0.17, share_adversaries=0.09
)


def crowd_players() -> list:  # type: ignore[type-arg]
    """The simulated volunteers, created once (no usable password: nobody logs in as them)."""
    User = get_user_model()
    players = []
    for n in range(1, CROWD_SIZE + 1):
        username = f"{CROWD_PREFIX}{n:02d}"
        user, made = User.objects.get_or_create(
            username=username, defaults={"display_name": f"Demo crowd {n}"}
        )
        if made:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            user_grant_role(user=user, role=Role.VOLUNTEER)
        players.append(user)
    return players


def crowd_labels_load(*, dataset: Dataset, truth: dict[str, str], seed: int = 0) -> int:
    """Label a share of `dataset`'s images with the simulated crowd; returns labels added.

    `truth` maps an image's `source_ref` to its class code in the source dataset. A dataset
    that already has crowd labels is left alone.
    """
    players = crowd_players()
    if Annotation.objects.filter(image__dataset=dataset, player__in=players).exists():
        return 0
    classes = list(dataset.classes.order_by("order"))
    index = {c.code: k for k, c in enumerate(classes)}
    images = [
        image
        for image in dataset.images.filter(status=Image.Status.ACTIVE).order_by("id")
        if truth.get(image.source_ref) in index
    ]
    if len(classes) < 2 or not images:
        return 0
    rng = np.random.default_rng(seed)
    crowd = draw_crowd(SPEC, len(classes), rng)
    chosen = rng.permutation(len(images))[: int(LABELLED_SHARE * len(images))]
    limit = min(dataset.max_labels, CROWD_SIZE)
    labels = []
    for position in chosen:
        image = images[int(position)]
        draw = rng.random()
        # Some images are hard for everyone (ambiguous findings): answers drift towards chance,
        # they collect labels up to the limit and some stay uncertain for a clinician.
        hard = draw >= 0.9
        k = 3 if draw < 0.7 else 5 if not hard else limit
        who = rng.choice(CROWD_SIZE, size=k, replace=False, p=crowd.activity)
        true = index[truth[image.source_ref]]
        for p in who:
            row = crowd.confusions[p, true]
            if hard:
                row = HARD_SIGNAL * row + (1 - HARD_SIGNAL) / len(classes)
            answer = int(rng.choice(len(classes), p=row))
            labels.append(
                Annotation(
                    image=image,
                    player=players[int(p)],
                    label_class=classes[answer],
                    source=Annotation.Source.MATCH_THREE,
                    idempotency_key=f"demo-crowd:{image.pk}",
                    response_ms=int(rng.integers(1500, 7000)),
                )
            )
    with transaction.atomic():
        Annotation.objects.bulk_create(labels, batch_size=1000)
        consensus_refit(dataset_id=dataset.pk)
    return len(labels)


def source_truth(source, data_dir: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """`source_ref` → expert class code for every item of a demo source."""
    return {f"{source.folder}:{item.path.name}": item.label for item in source.items(data_dir)}
