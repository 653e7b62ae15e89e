from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """An account. The only table that may hold a person's contact data (email).

    `display_name` is the public handle on leaderboards; it never needs to be a real name.
    """

    display_name = models.CharField(max_length=40, blank=True)

    def public_name(self) -> str:
        return self.display_name or self.username
