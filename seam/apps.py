from django.apps import AppConfig


class SeamConfig(AppConfig):
    name = "seam"
    verbose_name = "Seam API and webhooks"
