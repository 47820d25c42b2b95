from django.apps import AppConfig


class SeamConfig(AppConfig):
    name = "seam"
    verbose_name = "Seam API and webhooks"

    def ready(self) -> None:
        from seam import checks  # noqa: F401 - registers the settings check
