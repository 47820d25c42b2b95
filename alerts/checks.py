from django.conf import settings
from django.core.checks import Error, register

from alerts.destinations import problems


@register("alerts")
def check_alert_settings(app_configs, **kwargs) -> list[Error]:
    errors = [Error(message, id="alerts.E001") for message in problems(settings.ALERT_URLS)]
    if not 0 < settings.ALERT_ERROR_RATE <= 100:
        errors.append(
            Error("ALERT_ERROR_RATE is a percent above 0 and at most 100.", id="alerts.E002")
        )
    if settings.DASHBOARD_URL and not settings.DASHBOARD_URL.startswith(("http://", "https://")):
        errors.append(Error("DASHBOARD_URL must start with http:// or https://.", id="alerts.E003"))
    return errors
