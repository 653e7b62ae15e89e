"""No API endpoint is open by accident: every DRF view names its permission classes."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _api_views():
    for route, callback in _walk(get_resolver().url_patterns):
        view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        if view_class is not None and issubclass(view_class, APIView):
            yield route, view_class


def _declares_permissions(view_class) -> bool:
    for klass in view_class.__mro__:
        if klass is APIView:
            return False
        if "permission_classes" in vars(klass) and not klass.__module__.startswith(
            "rest_framework"
        ):
            return True
    return False


def test_the_walk_finds_the_api():
    routes = {route for route, _ in _api_views()}

    assert "api/v1/me/" in routes
    assert "health/" in routes


def test_every_api_view_declares_its_permission_classes(settings):
    undeclared = [
        f"{route} ({view.__module__}.{view.__name__})"
        for route, view in _api_views()
        # The schema views take theirs from SERVE_PERMISSIONS, asserted below.
        if not view.__module__.startswith("drf_spectacular") and not _declares_permissions(view)
    ]

    assert undeclared == []
    assert settings.SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] == [
        "rest_framework.permissions.IsAuthenticated"
    ]


def test_the_default_is_authenticated_only(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] == [
        "rest_framework.permissions.IsAuthenticated"
    ]


def test_schema_and_docs_need_a_login(db, api_client, client, volunteer):
    assert api_client.get("/api/schema/").status_code == 401
    anonymous_docs = client.get("/api/docs/")
    assert anonymous_docs.status_code == 302
    assert anonymous_docs["Location"].startswith("/accounts/login/?next=/api/docs/")
    api_client.force_authenticate(volunteer)
    client.force_login(volunteer)

    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert "/api/v1/me/" in schema.json()["paths"]
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()
