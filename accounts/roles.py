"""The roles people hold in Tessera, and the model permissions each role's group carries."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    DONOR = "donor", "Donor"
    VOLUNTEER = "volunteer", "Volunteer"
    CLINICIAN = "clinician", "Clinician"
    RESEARCHER = "researcher", "Researcher"
    COORDINATOR = "coordinator", "Site coordinator"
    ADMIN = "admin", "Admin"


# Roles anyone may take on sign-up; the others are granted by an admin.
SELF_SERVICE_ROLES = (Role.VOLUNTEER, Role.DONOR)

# "app_label.codename" of the permissions each role's group holds. Object-level rules (whose
# consent, which dataset) live in the access helpers; these say what a role may do at all.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.DONOR: ("consent.give_consent", "consent.upload_images"),
    Role.VOLUNTEER: ("annotate.play_games",),
    Role.CLINICIAN: ("annotate.play_games", "annotate.review_labels", "annotate.view_dataset"),
    Role.RESEARCHER: ("annotate.export_datasets", "annotate.view_dataset"),
    Role.COORDINATOR: (
        "consent.record_paper_consent",
        "consent.upload_images",
        "consent.review_intake",
        "annotate.view_dataset",
    ),
    Role.ADMIN: (
        "annotate.play_games",
        "annotate.review_labels",
        "annotate.export_datasets",
        "annotate.view_dataset",
        "annotate.manage_datasets",
        "consent.record_paper_consent",
        "consent.upload_images",
        "consent.review_intake",
        "consent.view_auditevent",
    ),
}
