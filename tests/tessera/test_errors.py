from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from rest_framework import exceptions

from tessera.errors import ApplicationError, Conflict, NotPermitted, api_exception_handler


def test_application_error_becomes_clean_json():
    response = api_exception_handler(ApplicationError("Nope.", extra={"field": "x"}), {})

    assert response.status_code == 400
    assert response.data == {"message": "Nope.", "extra": {"field": "x"}}


def test_subclasses_keep_their_status():
    assert api_exception_handler(NotPermitted("No."), {}).status_code == 403
    assert api_exception_handler(Conflict("Later."), {}).status_code == 409


def test_django_validation_error_lists_fields():
    response = api_exception_handler(ValidationError({"name": ["Too long."]}), {})

    assert response.status_code == 400
    assert response.data == {
        "message": "Validation error",
        "extra": {"fields": {"name": ["Too long."]}},
    }


def test_not_found_and_drf_errors_share_the_shape():
    assert api_exception_handler(Http404(), {}).data == {"message": "Not found.", "extra": {}}
    denied = api_exception_handler(exceptions.NotAuthenticated(), {})
    assert denied.status_code == 401
    assert denied.data == {
        "message": "Authentication credentials were not provided.",
        "extra": {},
    }


def test_unknown_errors_are_left_to_the_server_error_path():
    assert api_exception_handler(RuntimeError("bug"), {}) is None
