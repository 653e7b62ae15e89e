"""API views for consent and intake: one view per operation, explicit permission classes."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import HasRole
from accounts.roles import Role
from consent import selectors
from consent.services.consents import consent_give, consent_record_paper
from consent.services.intake import intake_batch_create
from consent.services.review import boxes_validate, intake_item_reject, intake_item_release
from consent.services.withdrawal import consent_withdraw, donor_withdraw_with_code
from consent.throttle import client_address, throttle_hit
from tessera.errors import ApplicationError, NotPermitted

_CONSENT_ROLES = (Role.DONOR, Role.COORDINATOR, Role.ADMIN)


class ConsentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    donor = serializers.CharField(source="donor.pseudonym")
    form = serializers.CharField(source="form.slug")
    form_version = serializers.IntegerField(source="form.version")
    language = serializers.CharField(source="form.language")
    status = serializers.CharField()
    scope = serializers.CharField()
    decisions = serializers.DictField(child=serializers.CharField())
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField(allow_null=True)
    given_at = serializers.DateTimeField()
    method = serializers.CharField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)


class ConsentFormListApi(APIView):
    """Published consent forms (newest version per language) with their text and purposes."""

    permission_classes = [HasRole(*_CONSENT_ROLES)]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        slug = serializers.CharField()
        version = serializers.IntegerField()
        language = serializers.CharField()
        title = serializers.CharField()
        text = serializers.CharField()
        purposes = serializers.ListField(child=serializers.CharField())
        published_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        forms = selectors.consent_forms_published()
        return Response(self.OutputSerializer(forms, many=True).data)


class ConsentListApi(APIView):
    """Consents you may see: your own (donor), those you recorded (coordinator), all (admin)."""

    permission_classes = [HasRole(*_CONSENT_ROLES)]

    @extend_schema(responses=ConsentOutputSerializer(many=True))
    def get(self, request):
        consents = selectors.consents_visible_to(user=request.user)
        return Response(ConsentOutputSerializer(consents, many=True).data)


class ConsentGiveApi(APIView):
    """A donor signs a published form online; the revocation code is in this response only."""

    permission_classes = [HasRole(Role.DONOR)]

    class InputSerializer(serializers.Serializer):
        form = serializers.IntegerField()
        decisions = serializers.DictField(child=serializers.ChoiceField(["permit", "deny"]))

    class OutputSerializer(serializers.Serializer):
        consent = ConsentOutputSerializer()
        revocation_code = serializers.CharField(allow_null=True)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        donor = selectors.donor_for_user(user=request.user)
        if donor is None:
            raise NotPermitted("Your account has no donor record.")
        form = selectors.consent_form_get_published(form_id=data.validated_data["form"])
        given = consent_give(
            donor=donor,
            form=form,
            decisions=data.validated_data["decisions"],
            actor_id=request.user.pk,
        )
        body = {"consent": given.consent, "revocation_code": given.revocation_code}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class PaperConsentRecordApi(APIView):
    """A site coordinator records a paper consent (new donor, or a known donor with their code)."""

    permission_classes = [HasRole(Role.COORDINATOR, Role.ADMIN)]

    class InputSerializer(serializers.Serializer):
        form = serializers.IntegerField()
        decisions = serializers.DictField(child=serializers.ChoiceField(["permit", "deny"]))
        given_at = serializers.DateTimeField()
        donor = serializers.CharField(required=False, allow_blank=True, default="")
        revocation_code = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses={201: ConsentGiveApi.OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        given = consent_record_paper(
            form=selectors.consent_form_get_published(form_id=values["form"]),
            decisions=values["decisions"],
            given_at=values["given_at"],
            actor_id=request.user.pk,
            donor_pseudonym=values["donor"],
            revocation_code=values["revocation_code"],
        )
        body = {"consent": given.consent, "revocation_code": given.revocation_code}
        return Response(ConsentGiveApi.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class WithdrawalOutputSerializer(serializers.Serializer):
    consent = serializers.IntegerField(source="consent_id")
    images_removed = serializers.SerializerMethodField()
    annotations_uncounted = serializers.IntegerField()
    already_withdrawn = serializers.BooleanField()

    def get_images_removed(self, obj) -> int:  # type: ignore[no-untyped-def]
        return len(obj.image_ids)


class ConsentWithdrawApi(APIView):
    """Withdraw a consent you may see: its images leave every game and export at once."""

    permission_classes = [HasRole(*_CONSENT_ROLES)]

    @extend_schema(request=None, responses=WithdrawalOutputSerializer)
    def post(self, request, consent_id: int):
        consent = selectors.consent_get_for_user(user=request.user, consent_id=consent_id)
        result = consent_withdraw(
            consent_id=consent.pk,
            actor_id=request.user.pk,
            channel=selectors.withdrawal_channel_for(user=request.user, consent=consent),
        )
        return Response(WithdrawalOutputSerializer(result).data)


class WithdrawWithCodeApi(APIView):
    """Withdraw every consent of a donor with the donor ID and revocation code (no account).

    Rate-limited per address and per donor ID.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []

    class InputSerializer(serializers.Serializer):
        donor = serializers.CharField(max_length=20)
        code = serializers.CharField(max_length=40)

    @extend_schema(request=InputSerializer, responses=WithdrawalOutputSerializer(many=True))
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        donor_id = data.validated_data["donor"].strip().upper()
        if throttle_hit(scope="revoke", keys=[f"ip:{client_address(request)}", f"d:{donor_id}"]):
            raise Throttled()
        results = donor_withdraw_with_code(pseudonym=donor_id, code=data.validated_data["code"])
        return Response(WithdrawalOutputSerializer(results, many=True).data)


class DonorImageListApi(APIView):
    """The donor's own images: status, times labelled (counted labels), export state."""

    permission_classes = [HasRole(Role.DONOR)]

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="image.public_id")
        dataset = serializers.CharField(source="image.dataset.name")
        status = serializers.CharField(source="image.status")
        created_at = serializers.DateTimeField(source="image.created_at")
        times_labelled = serializers.IntegerField()
        export_state = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        rows = selectors.donor_images(user=request.user)
        return Response(self.OutputSerializer(rows, many=True).data)


class IntakeBatchCreateApi(APIView):
    """Upload files (multipart `files`, several allowed, zips too) under a consent you may use."""

    permission_classes = [HasRole(Role.DONOR, Role.COORDINATOR, Role.ADMIN)]
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        consent = serializers.IntegerField()
        dataset = serializers.SlugField()
        files = serializers.ListField(child=serializers.FileField(), allow_empty=False)

    class OutputSerializer(serializers.Serializer):
        batch = serializers.UUIDField(source="public_id")
        items = serializers.IntegerField(source="items.count")

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer})
    def post(self, request):
        payload = {
            "consent": request.data.get("consent"),
            "dataset": request.data.get("dataset"),
            "files": request.FILES.getlist("files"),
        }
        data = self.InputSerializer(data=payload)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        consent = selectors.consent_get_for_upload(user=request.user, consent_id=values["consent"])
        dataset = selectors.datasets_for_upload().filter(slug=values["dataset"]).first()
        if dataset is None:
            raise ApplicationError("No such dataset.", extra={"field": "dataset"})
        batch = intake_batch_create(
            uploaded_by=request.user, consent=consent, dataset=dataset, files=values["files"]
        )
        return Response(self.OutputSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


class IntakeBatchProgressApi(APIView):
    """Progress of an upload: counts per status and, per file, the result or the reason."""

    permission_classes = [HasRole(Role.DONOR, Role.COORDINATOR, Role.ADMIN)]

    @extend_schema(responses=dict)
    def get(self, request, public_id):
        batch = selectors.intake_batch_get_for_user(user=request.user, public_id=public_id)
        return Response(selectors.intake_batch_progress(batch=batch))


class IntakeReviewListApi(APIView):
    """Quarantined intake waiting for a site coordinator (no donor identity)."""

    permission_classes = [HasRole(Role.COORDINATOR, Role.ADMIN)]

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="public_id")
        image = serializers.UUIDField(source="image.public_id")
        dataset = serializers.CharField(source="batch.dataset.slug")
        width = serializers.IntegerField(source="image.width")
        height = serializers.IntegerField(source="image.height")
        flags = serializers.ListField(child=serializers.CharField())
        text_boxes = serializers.ListField(child=serializers.DictField())
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        items = selectors.intake_review_queue(user=request.user)
        return Response(self.OutputSerializer(items, many=True).data)


class IntakeReviewDecideApi(APIView):
    """Release, black out regions and release, or reject one quarantined item."""

    permission_classes = [HasRole(Role.COORDINATOR, Role.ADMIN)]

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(["release", "redact", "reject"])
        boxes = serializers.ListField(child=serializers.DictField(), required=False, default=list)
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="public_id")
        status = serializers.CharField()
        reason = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, public_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        item = selectors.intake_item_get_for_review(user=request.user, public_id=public_id)
        if values["action"] == "reject":
            item = intake_item_reject(
                item_id=item.pk, actor_id=request.user.pk, reason=values["reason"]
            )
        else:
            boxes = []
            if values["action"] == "redact":
                boxes = boxes_validate(
                    values["boxes"], width=item.image.width, height=item.image.height
                )
                if not boxes:
                    raise ApplicationError("Give at least one region to black out.")
            item = intake_item_release(item_id=item.pk, actor_id=request.user.pk, boxes=boxes)
        return Response(self.OutputSerializer(item).data)
