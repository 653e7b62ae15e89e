"""tessera.db: the written-once INSERT that skips a row a unique constraint already holds."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.models import User
from tessera.db import insert_unless_taken

pytestmark = pytest.mark.django_db


def test_a_new_row_is_stored_with_its_defaults_and_gets_its_key():
    user = User(username="ana", email="ana@example.org")
    assert insert_unless_taken(user) is True
    stored = User.objects.get(username="ana")
    assert user.pk == stored.pk and not user._state.adding
    assert stored.email == "ana@example.org" and stored.date_joined is not None


def test_a_taken_row_is_skipped_and_the_transaction_goes_on():
    User.objects.create(username="ben", email="first@example.org")
    with transaction.atomic():
        assert insert_unless_taken(User(username="ben", email="second@example.org")) is False
        # No IntegrityError, no savepoint needed: the transaction is still usable.
        User.objects.create(username="cai")
    assert User.objects.get(username="ben").email == "first@example.org"
    assert User.objects.filter(username="cai").exists()
