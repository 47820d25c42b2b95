from django.urls import path

from seam import webhooks

urlpatterns = [
    path("webhooks/seam/", webhooks.seam_webhook, name="seam-webhook"),
]
