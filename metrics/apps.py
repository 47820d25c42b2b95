from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self) -> None:
        from metrics import counters  # noqa: F401 - connects the receivers of seam.signals
