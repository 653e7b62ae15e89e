from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tessera import views

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("annotate.api_urls")),
    path("", include("consent.api_urls")),
    path("", include("games.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.HealthApi.as_view(), name="health"),
    path("accounts/", include("accounts.urls")),
    path("play/", include("games.urls")),
    path("consent/", include("consent.urls")),
    path("datasets/", include("annotate.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # A person opening the docs logs in first (scripts use the schema with their token).
    path(
        "api/docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin, Swagger UI).
    path("favicon.ico", views.favicon),
    path("admin/", admin.site.urls),
]
