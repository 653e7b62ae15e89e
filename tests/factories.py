"""factory_boy factories shared by the whole suite."""

from __future__ import annotations

import hashlib
import io

import factory
from django.utils import timezone
from PIL import Image as PILImage

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_grant_role
from annotate.models import Dataset, Image, LabelClass
from consent.models import Consent, ConsentForm, Donor, Purpose


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Sequence(lambda n: f"Player {n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create:
            self.save()
            if extracted:
                user_grant_role(user=self, role=extracted)


def user_with_role(role: str = Role.VOLUNTEER, **kwargs) -> User:
    return UserFactory(role=role, **kwargs)


class DonorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Donor

    pseudonym = factory.Sequence(lambda n: f"D-TEST{n:06d}")


class ConsentFormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentForm

    slug = "test-form"
    version = factory.Sequence(lambda n: n + 1)
    title = "Test consent"
    text = "You may use my images."
    purposes = [Purpose.ANNOTATION, Purpose.RESEARCH_EXPORT]
    published_at = factory.LazyFunction(timezone.now)


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    donor = factory.SubFactory(DonorFactory)
    form = factory.SubFactory(ConsentFormFactory)
    decisions = {Purpose.ANNOTATION: "permit", Purpose.RESEARCH_EXPORT: "permit"}
    period_start = factory.LazyFunction(timezone.now)


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"dataset-{n}")
    name = factory.Sequence(lambda n: f"Dataset {n}")

    @factory.post_generation
    def classes(self, create, extracted, **kwargs):
        if create:
            for order, code in enumerate(extracted or ["a", "b"]):
                LabelClass.objects.create(dataset=self, code=code, name=code.upper(), order=order)


def png_bytes(size: tuple[int, int] = (8, 8), value: int = 128) -> bytes:
    out = io.BytesIO()
    PILImage.new("L", size, value).save(out, format="PNG")
    return out.getvalue()


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    dataset = factory.SubFactory(DatasetFactory)
    consent = factory.SubFactory(ConsentFactory)
    donor = factory.SelfAttribute("consent.donor")
    width = 8
    height = 8
    file = factory.django.FileField(filename="image.png", data=factory.LazyFunction(png_bytes))
    thumbnail = factory.django.FileField(filename="thumb.png", data=factory.LazyFunction(png_bytes))
    sha256 = factory.LazyFunction(lambda: hashlib.sha256(png_bytes()).hexdigest())
