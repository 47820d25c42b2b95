from django.conf import settings
from django.db import models


class ProviderAccount(models.Model):
    """Who a user made by single sign-on is at the provider: its issuer and subject identify them
    for good, where a username or an email address can change hands."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_account"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    first_signed_in_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="provider_account_once")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
