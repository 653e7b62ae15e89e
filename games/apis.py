"""Match-three API: start or resume a level, read a session, send a batch of moves (labels)."""

from __future__ import annotations

from typing import Any

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
MOVE_KEY_MAX = 64


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
    """The reply ``SessionOutputSerializer`` describes, built directly: the view is plain JSON
    data already, and the serializer copied it field by field (half a millisecond a reply).
    Not ``dataclasses.asdict(view)`` either: it deep-copies the whole board."""
    data = {
        "token": str(view.token),
        "view": view.view,
        "results": [
            {"key": r.key, "outcome": r.outcome, "events": r.events, "message": r.message}
            for r in view.results
        ],
        "badges": view.badges,
    }
    return Response(data, status=code)


_MOVE_TYPES = ("judge", "swap", "quit")
_NULL = "This field may not be null."
# name -> (smallest, largest or None) of the optional whole-number fields of a move
_MOVE_NUMBERS = {
    "tile": (0, None),
    "other": (0, None),
    "class_index": (0, 7),
    "client_ms": (0, None),
}


class MoveSerializer(serializers.Serializer):
    """What a move looks like (for the schema; ``moves_from_request`` checks it)."""

    key = serializers.CharField(max_length=MOVE_KEY_MAX)
    type = serializers.ChoiceField(choices=list(_MOVE_TYPES))
    tile = serializers.IntegerField(required=False, min_value=0)
    other = serializers.IntegerField(required=False, min_value=0)
    class_index = serializers.IntegerField(required=False, min_value=0, max_value=7)
    client_ms = serializers.IntegerField(required=False, min_value=0)


def _move_errors(raw: Any) -> tuple[MoveInput | None, dict[str, list[str]]]:
    """One move of a request checked as ``MoveSerializer`` describes it, with
    DRF's messages. Written out because DRF's validation of a batch of 20 moves took 0.6 ms, a
    fifth of the whole request's work outside the game itself."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        return None, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    errors: dict[str, list[str]] = {}
    key = raw.get("key")
    if key is None:
        errors["key"] = ["This field is required." if "key" not in raw else _NULL]
    elif not isinstance(key, str | int) or isinstance(key, bool):
        errors["key"] = ["Not a valid string."]
    else:
        key = str(key).strip()
        if not key:
            errors["key"] = ["This field may not be blank."]
        elif len(key) > MOVE_KEY_MAX:
            errors["key"] = [f"Ensure this field has no more than {MOVE_KEY_MAX} characters."]
    kind = raw.get("type")
    if kind is None:
        errors["type"] = ["This field is required." if "type" not in raw else _NULL]
    elif kind not in _MOVE_TYPES:
        errors["type"] = [f'"{kind}" is not a valid choice.']
    numbers: dict[str, int | None] = {}
    for name, (low, high) in _MOVE_NUMBERS.items():
        value = numbers[name] = raw.get(name)
        if value is None:
            if name in raw:
                errors[name] = [_NULL]
        elif not isinstance(value, int) or isinstance(value, bool):
            errors[name] = ["A valid integer is required."]
        elif value < low:
            errors[name] = [f"Ensure this value is greater than or equal to {low}."]
        elif high is not None and value > high:
            errors[name] = [f"Ensure this value is less than or equal to {high}."]
    if errors:
        return None, errors
    return MoveInput(key=key, kind=kind, **numbers), {}


def moves_from_request(data: Any) -> list[MoveInput]:
    """The moves of a moves request, or a ``ValidationError`` shaped as DRF's would be."""
    moves = data.get("moves") if isinstance(data, dict) else None
    if moves is None:
        present = isinstance(data, dict) and "moves" in data
        raise serializers.ValidationError(
            {"moves": [_NULL if present else "This field is required."]}
        )
    if not isinstance(moves, list):
        kind = type(moves).__name__
        raise serializers.ValidationError(
            {"moves": [f'Expected a list of items but got type "{kind}".']}
        )
    if not 1 <= len(moves) <= MAX_MOVES_PER_BATCH:
        raise serializers.ValidationError(
            {
                "moves": [
                    "Ensure this field has at least 1 elements."
                    if not moves
                    else f"Ensure this field has no more than {MAX_MOVES_PER_BATCH} elements."
                ]
            }
        )
    checked = [_move_errors(raw) for raw in moves]
    if any(errors for _, errors in checked):
        raise serializers.ValidationError(
            {"moves": {k: errors for k, (_, errors) in enumerate(checked) if errors}}
        )
    return [move for move, _ in checked if move is not None]


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

    class InputSerializer(serializers.Serializer):
        moves = serializers.ListField(
            child=MoveSerializer(), min_length=1, max_length=MAX_MOVES_PER_BATCH
        )

    @extend_schema(request=InputSerializer, responses=SessionOutputSerializer)
    def post(self, request, token):
        view = session_moves_apply(
            player_id=request.user.pk, token=token, moves=moves_from_request(request.data)
        )
        return _out(view)
