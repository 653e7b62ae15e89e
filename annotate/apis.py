from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import HasRole
from accounts.roles import Role
from annotate.export.selection import ExportFilters
from annotate.models import Dataset, Export, ReviewItem
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


# --- review ----------------------------------------------------------------------------------------


class ImageReportApi(APIView):
    """A player reports that an image looks wrong (wrong body part, unreadable, identifying text)."""

    permission_classes = [HasRole(Role.VOLUNTEER, Role.CLINICIAN, Role.ADMIN)]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(request=InputSerializer, responses={201: None})
    def post(self, request, public_id):
        from annotate.review import review_item_report
        from annotate.selectors import image_get_for_viewing

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        image = image_get_for_viewing(user=request.user, public_id=public_id)
        review_item_report(
            image=image, player=request.user, reason_text=data.validated_data["reason"]
        )
        return Response({"reported": True}, status=status.HTTP_201_CREATED)


class ReviewItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    image = serializers.UUIDField(source="image.public_id")
    dataset = serializers.CharField(source="image.dataset.slug")
    reason = serializers.CharField()
    stage = serializers.CharField()
    status = serializers.CharField()
    priority = serializers.FloatField()
    details = serializers.SerializerMethodField()
    claim_expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_details(self, obj) -> dict:  # type: ignore[no-untyped-def]
        # Reports carry player ids: clinicians see the texts only.
        details = dict(obj.details)
        if "reports" in details:
            details["reports"] = [r.get("text", "") for r in details["reports"]]
        return details


class ReviewItemListApi(APIView):
    """The caller's review queue, best first (clinicians, admins). Filters: dataset, reason."""

    permission_classes = [HasRole(Role.CLINICIAN, Role.ADMIN)]

    class FilterSerializer(serializers.Serializer):
        dataset = serializers.SlugField(required=False)
        reason = serializers.ChoiceField(choices=ReviewItem.Reason.choices, required=False)

    @extend_schema(parameters=[FilterSerializer], responses=ReviewItemOutputSerializer(many=True))
    def get(self, request):
        from annotate.review.selectors import review_queue

        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = review_queue(
            user=request.user,
            dataset_slug=filters.validated_data.get("dataset"),
            reason=filters.validated_data.get("reason"),
        )[:100]
        return Response(ReviewItemOutputSerializer(items, many=True).data)


class ReviewClaimNextApi(APIView):
    """Hold the best open item nobody else holds; 204 when the queue is empty."""

    permission_classes = [HasRole(Role.CLINICIAN, Role.ADMIN)]

    class InputSerializer(serializers.Serializer):
        dataset = serializers.SlugField(required=False)
        reason = serializers.ChoiceField(choices=ReviewItem.Reason.choices, required=False)

    @extend_schema(request=InputSerializer, responses={200: ReviewItemOutputSerializer})
    def post(self, request):
        from annotate.review import review_item_claim_next

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = review_item_claim_next(
            user=request.user,
            dataset_slug=data.validated_data.get("dataset"),
            reason=data.validated_data.get("reason"),
        )
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ReviewItemOutputSerializer(item).data)


class ReviewClaimApi(APIView):
    """Hold one item (409 when another clinician holds it)."""

    permission_classes = [HasRole(Role.CLINICIAN, Role.ADMIN)]

    @extend_schema(request=None, responses=ReviewItemOutputSerializer)
    def post(self, request, item_id: int):
        from annotate.review import review_item_claim

        item = review_item_claim(item_id=item_id, user=request.user)
        return Response(ReviewItemOutputSerializer(item).data)


class ReviewReleaseApi(APIView):
    """Give a held item back to the queue."""

    permission_classes = [HasRole(Role.CLINICIAN, Role.ADMIN)]

    @extend_schema(request=None, responses={204: None})
    def post(self, request, item_id: int):
        from annotate.review import review_item_release

        review_item_release(item_id=item_id, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReviewDecisionCreateApi(APIView):
    """Decide a held item: confirm, relabel, contour, release, unusable or escalate."""

    permission_classes = [HasRole(Role.CLINICIAN, Role.ADMIN)]

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(
            choices=["confirm", "relabel", "contour", "release", "unusable", "escalate"]
        )
        label = serializers.CharField(required=False, allow_blank=True)
        geometry = serializers.JSONField(required=False, allow_null=True)
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        stage = serializers.CharField()
        action = serializers.CharField()
        item_status = serializers.CharField(source="item.status")
        item_stage = serializers.CharField(source="item.stage")

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, item_id: int):
        from annotate.review import review_decision_submit

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = review_decision_submit(
            item_id=item_id,
            user=request.user,
            action=data.validated_data["action"],
            label=data.validated_data.get("label") or None,
            geometry=data.validated_data.get("geometry"),
            note=data.validated_data.get("note", ""),
        )
        decision.item.refresh_from_db()
        return Response(self.OutputSerializer(decision).data, status=status.HTTP_201_CREATED)


# --- export ----------------------------------------------------------------------------------------


class ExportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.CharField(source="dataset.slug")
    version = serializers.IntegerField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    format = serializers.CharField()
    filters = serializers.JSONField()
    counts = serializers.JSONField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    n_withdrawn = serializers.IntegerField()
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, obj) -> str | None:  # type: ignore[no-untyped-def]
        from django.urls import reverse

        if obj.status != Export.Status.READY:
            return None
        return reverse("api-export-download", args=[obj.pk])


class ExportListApi(APIView):
    """The caller's exports, newest first (admins: everybody's)."""

    permission_classes = [HasRole(Role.RESEARCHER, Role.ADMIN)]

    @extend_schema(responses=ExportOutputSerializer(many=True))
    def get(self, request):
        from annotate.export.selectors import export_list_for_user

        exports = export_list_for_user(user=request.user)[:200]
        return Response(ExportOutputSerializer(exports, many=True).data)


class ExportCreateApi(APIView):
    """Request a new snapshot; it builds in the background (poll the detail endpoint)."""

    permission_classes = [HasRole(Role.RESEARCHER, Role.ADMIN)]

    class InputSerializer(serializers.Serializer):
        dataset = serializers.SlugField()
        classes = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        min_confidence = serializers.FloatField(
            required=False, default=0.0, min_value=0, max_value=1
        )
        min_labels = serializers.IntegerField(required=False, default=0, min_value=0)
        gold_only = serializers.BooleanField(required=False, default=False)
        format = serializers.ChoiceField(
            choices=Export.Format.choices, required=False, default="all"
        )

    @extend_schema(request=InputSerializer, responses={202: ExportOutputSerializer})
    def post(self, request):
        from annotate.export import export_request
        from tessera.errors import ApplicationError

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dataset = Dataset.objects.filter(slug=values["dataset"]).first()
        if dataset is None:
            raise ApplicationError("No such dataset.")
        export = export_request(
            user=request.user,
            dataset=dataset,
            filters=ExportFilters(
                classes=tuple(values["classes"]),
                min_confidence=values["min_confidence"],
                min_labels=values["min_labels"],
                gold_only=values["gold_only"],
            ),
            fmt=values["format"],
        )
        export.refresh_from_db()
        return Response(ExportOutputSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    """One export: status and progress while it builds, then counts, checksum, and the items a
    later withdrawal affected."""

    permission_classes = [HasRole(Role.RESEARCHER, Role.ADMIN)]

    class OutputSerializer(ExportOutputSerializer):
        withdrawn_items = serializers.SerializerMethodField()

        def get_withdrawn_items(self, obj) -> list[str]:  # type: ignore[no-untyped-def]
            from annotate.export.selectors import export_withdrawn_items

            return [str(i.public_id) for i in export_withdrawn_items(export=obj)]

    @extend_schema(responses=OutputSerializer)
    def get(self, request, export_id: int):
        from annotate.export.selectors import export_get_for_user

        export = export_get_for_user(user=request.user, export_id=export_id)
        return Response(self.OutputSerializer(export).data)


class ExportDownloadApi(APIView):
    """The archive, for the researcher who asked for it (and admins) only. Audited."""

    permission_classes = [HasRole(Role.RESEARCHER, Role.ADMIN)]

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request, export_id: int):
        from annotate.export.selectors import export_get_for_user
        from consent.services import audit_event_record
        from tessera.errors import Conflict

        export = export_get_for_user(user=request.user, export_id=export_id)
        if export.status != Export.Status.READY:
            raise Conflict("This export is not ready.")
        audit_event_record(actor_id=request.user.pk, action="export.downloaded", target=export)
        response = FileResponse(
            export.file.open("rb"),
            as_attachment=True,
            filename=f"{export.dataset.slug}-v{export.version}.zip",
            content_type="application/zip",
        )
        response["Cache-Control"] = "private, no-store"
        response["X-Content-SHA256"] = export.sha256
        return response
