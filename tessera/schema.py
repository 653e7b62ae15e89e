"""OpenAPI generation tuned to the project's one-view-per-operation style."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class TesseraAutoSchema(AutoSchema):
    """Name nested `InputSerializer`/`OutputSerializer` classes after their view.

    Every API view declares small nested serializers with the same names; without this the
    components collide ("Output" from ten views).
    """

    def get_serializer_name(self, serializer, direction) -> str:  # type: ignore[no-untyped-def]
        name = super().get_serializer_name(serializer, direction)
        qualname = type(serializer).__qualname__
        if "." in qualname:
            outer = qualname.split(".")[0].removesuffix("Api")
            return outer + name
        return name
