from django.urls import path

from attempts import views, webhooks

urlpatterns = [
    path("attempts/", views.attempt_list, name="attempt-list"),
    path("webhooks/seam/", webhooks.seam_webhook, name="seam-webhook"),
]
