from django.db import migrations

# One rule of each kind, so alerts work out of the box. The error-rate rule's threshold is
# empty: it follows ALERT_ERROR_RATE. The error-type rule waits for a list of types.
DEFAULT_RULES = [
    {"name": "Error rate", "kind": "error_rate"},
    {"name": "Error type", "kind": "error_type", "enabled": False},
    {"name": "Stuck attempts", "kind": "stuck", "minutes": 15},
    {"name": "Webhooks missed", "kind": "webhooks_missed"},
    {"name": "Seam unreachable", "kind": "seam_unreachable", "minutes": 5},
]


def create_rules(apps, schema_editor):
    Rule = apps.get_model("alerts", "Rule")
    for fields in DEFAULT_RULES:
        Rule.objects.get_or_create(name=fields["name"], defaults=fields)


def remove_rules(apps, schema_editor):
    Rule = apps.get_model("alerts", "Rule")
    Rule.objects.filter(name__in=[r["name"] for r in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(create_rules, remove_rules)]
