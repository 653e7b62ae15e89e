from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import HasRole
from accounts.roles import Role
from annotate.selectors import dataset_list_for_viewer


class DatasetListApi(APIView):
    """Datasets with their classes and image counts (clinicians, researchers, coordinators, admins)."""

    permission_classes = [HasRole(Role.CLINICIAN, Role.RESEARCHER, Role.COORDINATOR, Role.ADMIN)]

    class ClassSerializer(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()
        colour = serializers.CharField()
        shape = serializers.CharField()

    class OutputSerializer(serializers.Serializer):
        slug = serializers.SlugField()
        name = serializers.CharField()
        task = serializers.CharField()
        licence = serializers.CharField()
        n_images = serializers.IntegerField()
        n_active = serializers.IntegerField()
        n_gold = serializers.IntegerField()
        classes = serializers.SerializerMethodField()

        def get_classes(self, obj) -> list[dict]:  # type: ignore[no-untyped-def]
            return DatasetListApi.ClassSerializer(obj.classes.all(), many=True).data

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        datasets = dataset_list_for_viewer(user=request.user)
        return Response(self.OutputSerializer(datasets, many=True).data)
