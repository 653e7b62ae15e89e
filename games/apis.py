"""Match-three API: start or resume a level, read a session, send a batch of moves (labels)."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import HasRole
from accounts.roles import Role
from games.selectors import dataset_for_play
from games.services import (
    MAX_MOVES_PER_BATCH,
    MoveInput,
    SessionView,
    session_moves_apply,
    session_resume,
    session_start,
)

PLAYER_ROLES = (Role.VOLUNTEER, Role.CLINICIAN, Role.ADMIN)


class SessionOutputSerializer(serializers.Serializer):
    class ResultSerializer(serializers.Serializer):
        key = serializers.CharField()
        outcome = serializers.ChoiceField(choices=["applied", "rejected", "duplicate"])
        events = serializers.ListField(child=serializers.DictField())
        message = serializers.CharField(allow_blank=True)

    token = serializers.UUIDField()
    view = serializers.DictField()
    results = ResultSerializer(many=True)
    badges = serializers.ListField(child=serializers.CharField())


def _out(view: SessionView, *, code: int = status.HTTP_200_OK) -> Response:
    # Not dataclasses.asdict(view): it deep-copies the whole board (a few ms per request).
    data = {
        "token": view.token,
        "view": view.view,
        "results": [asdict(r) for r in view.results],
        "badges": view.badges,
    }
    return Response(SessionOutputSerializer(data).data, status=code)


class Match3SessionStartApi(APIView):
    """Start a level, or resume the player's open session of that level."""

    permission_classes = [HasRole(*PLAYER_ROLES)]

    class InputSerializer(serializers.Serializer):
        dataset = serializers.SlugField()
        level = serializers.CharField(max_length=40)

    @extend_schema(request=InputSerializer, responses=SessionOutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_for_play(slug=data.validated_data["dataset"])
        view = session_start(
            player_id=request.user.pk, dataset=dataset, level_id=data.validated_data["level"]
        )
        return _out(view, code=status.HTTP_201_CREATED)


class Match3SessionDetailApi(APIView):
    """The public state of one of the player's sessions (resume after a reload)."""

    permission_classes = [HasRole(*PLAYER_ROLES)]

    @extend_schema(responses=SessionOutputSerializer)
    def get(self, request, token):
        return _out(session_resume(player_id=request.user.pk, token=token))


class Match3MovesApi(APIView):
    """Apply a batch of moves; judgements become labels. Retrying a batch (same keys) is safe."""

    permission_classes = [HasRole(*PLAYER_ROLES)]

    class MoveSerializer(serializers.Serializer):
        key = serializers.CharField(max_length=64)
        type = serializers.ChoiceField(choices=["judge", "swap", "quit"])
        tile = serializers.IntegerField(required=False, min_value=0)
        other = serializers.IntegerField(required=False, min_value=0)
        class_index = serializers.IntegerField(required=False, min_value=0, max_value=7)
        client_ms = serializers.IntegerField(required=False, min_value=0)

    class InputSerializer(serializers.Serializer):
        moves = serializers.ListField(min_length=1, max_length=MAX_MOVES_PER_BATCH)

    @extend_schema(request=InputSerializer, responses=SessionOutputSerializer)
    def post(self, request, token):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        moves = self.MoveSerializer(data=data.validated_data["moves"], many=True)
        moves.is_valid(raise_exception=True)
        view = session_moves_apply(
            player_id=request.user.pk,
            token=token,
            moves=[
                MoveInput(
                    key=m["key"],
                    kind=m["type"],
                    tile=m.get("tile"),
                    other=m.get("other"),
                    class_index=m.get("class_index"),
                    client_ms=m.get("client_ms"),
                )
                for m in moves.validated_data
            ],
        )
        return _out(view)
