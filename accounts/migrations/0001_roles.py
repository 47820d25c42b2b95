"""The roles' groups. Nobody loses what they had: staff were the ones editing alert rules, so they
become admins; every other user could Track and Refresh, so they become operators."""

from django.conf import settings
from django.db import migrations

GROUPS = ["Viewers", "Operators", "Admins"]


def make_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    db = schema_editor.connection.alias
    groups = {name: Group.objects.using(db).get_or_create(name=name)[0] for name in GROUPS}
    Membership = User.groups.through
    already = set(
        Membership.objects.using(db)
        .filter(group__name__in=GROUPS)
        .values_list("user_id", flat=True)
    )
    rows = [
        Membership(user_id=pk, group_id=groups["Admins" if staff else "Operators"].pk)
        for pk, staff in User.objects.using(db).values_list("pk", "is_staff").iterator()
        if pk not in already
    ]
    Membership.objects.using(db).bulk_create(rows, batch_size=500)


def remove_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(make_groups, remove_groups)]
