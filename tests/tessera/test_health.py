from __future__ import annotations


def test_health_reports_every_component(db, client):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert [c["name"] for c in body["components"]] == [
        "database",
        "cache",
        "channel_layer",
        "broker",
    ]
    assert all(c["ok"] for c in body["components"])


def test_health_is_503_when_a_component_is_down(db, client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    # (Django rebuilds its cache handlers when the CACHES setting changes.)
    response = client.get("/health/")

    body = response.json()
    assert response.status_code == 503
    cache_status = next(c for c in body["components"] if c["name"] == "cache")
    assert cache_status["ok"] is False
    assert cache_status["backend"] == "RedisCache"


def test_health_answers_json_to_a_browser_too(db, client):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/health/", HTTP_ACCEPT=browser)
    assert response["Content-Type"] == "application/json"
    assert response.json()["ok"] is True


def test_favicon_ico_points_at_the_site_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("tessera/favicon.svg")
