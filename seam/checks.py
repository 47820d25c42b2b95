from django.conf import settings
from django.core.checks import Error, register

from seam import secrets


@register("seam")
def check_webhook_secret(app_configs, **kwargs) -> list[Error]:
    if not settings.SEAM_WEBHOOK_SECRET:
        return []
    _, problems = secrets.parse(settings.SEAM_WEBHOOK_SECRET)
    return [Error(problem, id="seam.E001") for problem in problems]
