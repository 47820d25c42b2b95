import importlib

import pytest
from django.apps import apps

from alerts.models import Rule


@pytest.fixture(autouse=True)
def default_rules(request):
    """The rules `migrate` installs. A transactional test's teardown empties every table, the
    migration's rows too, so tests that come after one get them back here."""
    if not request.node.get_closest_marker("django_db"):
        return
    request.getfixturevalue("_django_db_helper")
    if not Rule.objects.exists():
        migration = importlib.import_module("alerts.migrations.0002_default_rules")
        migration.create_rules(apps, None)
