"""Platform-wide pages and endpoints: the home page and the health report."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.templatetags.static import static
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from tessera.health import health_report


def home(request):
    return render(request, "home.html")


class HealthApi(APIView):
    """Reachability of database, cache, channel layer and broker; 503 if any is down.

    Open to load balancers and operators on purpose: it reveals backend kinds, never data.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []
    # Always JSON, also in a browser: monitors and people read the same answer.
    renderer_classes = [JSONRenderer]

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        ok = serializers.BooleanField()
        backend = serializers.CharField()
        detail = serializers.CharField()

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {"ok": serializers.BooleanField(), "components": OutputSerializer(many=True)},
        )
    )
    def get(self, request):
        components = health_report()
        ok = all(c.ok for c in components)
        data = {"ok": ok, "components": self.OutputSerializer(components, many=True).data}
        return Response(data, status=200 if ok else 503)


def favicon(request):
    """The site icon for pages that name none (resolved per request: hashed names in production)."""
    return redirect(static("tessera/favicon.svg"), permanent=True)
