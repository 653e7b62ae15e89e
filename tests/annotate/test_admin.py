"""The admin shows images and labels but never writes them: intake, games and withdrawal do."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import Role
from annotate.models import Image
from tests.factories import ImageFactory, user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = user_with_role(Role.ADMIN)
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    client.force_login(user)
    return client


def test_images_are_listed_and_shown_but_cannot_be_added_changed_or_deleted(admin_client):
    image = ImageFactory()

    assert admin_client.get(reverse("admin:annotate_image_changelist")).status_code == 200
    change = reverse("admin:annotate_image_change", args=[image.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.get(reverse("admin:annotate_image_add")).status_code == 403
    assert admin_client.post(change, {"status": "unusable"}).status_code == 403
    delete = reverse("admin:annotate_image_delete", args=[image.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    bulk = admin_client.post(
        reverse("admin:annotate_image_changelist"),
        {"action": "delete_selected", "_selected_action": [image.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    image.refresh_from_db()
    assert image.status == Image.Status.ACTIVE
    assert Image.objects.filter(pk=image.pk).exists()
