"""Roles: who may do what (accounts/access.py), the groups' migration, the Django admin."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.access import Role, give_role, role_of
from alerts.models import Rule
from testing.users import logged_in, user_with_role


@pytest.mark.django_db
class TestRoleOf:
    def test_a_user_in_no_group_is_a_viewer(self):
        assert role_of(User.objects.create_user("nobody")) == Role.VIEWER

    def test_a_superuser_is_an_admin(self):
        assert role_of(User.objects.create_superuser("root")) == Role.ADMIN

    def test_staff_alone_is_no_role_of_its_own(self):
        assert role_of(User.objects.create_user("helpdesk", is_staff=True)) == Role.VIEWER

    def test_the_highest_of_its_groups_wins(self):
        user = User.objects.create_user("both")
        user.groups.add(
            Group.objects.get_or_create(name="Viewers")[0],
            Group.objects.get_or_create(name="Operators")[0],
            Group.objects.get_or_create(name="Some other team")[0],
        )
        assert role_of(user) == Role.OPERATOR

    def test_a_role_given_replaces_the_one_before(self):
        user = user_with_role(Role.ADMIN)
        give_role(user, Role.VIEWER)
        user = User.objects.get(pk=user.pk)
        assert role_of(user) == Role.VIEWER
        assert list(user.groups.values_list("name", flat=True)) == ["Viewers"]

    def test_a_deactivated_user_has_none(self):
        user = user_with_role(Role.ADMIN)
        user.is_active = False
        assert role_of(user) is None


@pytest.mark.django_db
class TestTheDjangoAdmin:
    def test_it_sends_anonymous_users_to_the_dashboards_login(self, client):
        response = client.get("/admin/alerts/rule/", follow=True)
        assert response.redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2Falerts%2Frule%2F"

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
    def test_it_refuses_anyone_but_admins_with_a_reason(self, client, role):
        logged_in(client, role)
        response = client.get("/admin/alerts/rule/", follow=True)
        assert response.status_code == 403
        assert "Only admins may use the Django admin." in response.content.decode()

    def test_an_admin_edits_the_alert_rules(self, client):
        logged_in(client, Role.ADMIN)
        rule = Rule.objects.create(name="Stuck for the test", kind="stuck", minutes=15)
        assert client.get("/admin/alerts/rule/").status_code == 200
        form = {
            "name": rule.name,
            "kind": rule.kind,
            "enabled": "on",
            "action_type": "",
            "window_minutes": 15,
            "min_ended": 10,
            "threshold": "",
            "minutes": 30,
            "error_types": "",
        }

        response = client.post(f"/admin/alerts/rule/{rule.pk}/change/", form)

        assert response.status_code == 302
        assert Rule.objects.get(pk=rule.pk).minutes == 30

    def test_an_admin_manages_users(self, client):
        logged_in(client, Role.ADMIN)
        assert client.get("/admin/auth/user/").status_code == 200

    def test_only_admins_see_the_link_to_the_rules(self, client):
        logged_in(client, Role.OPERATOR)
        assert "/admin/alerts/rule/" not in client.get("/alerts/").content.decode()
        logged_in(client, Role.ADMIN)
        assert "/admin/alerts/rule/" in client.get("/alerts/").content.decode()


@pytest.mark.django_db
class TestEnsureOperator:
    def test_the_login_make_run_prints_is_an_operator(self, capsys):
        call_command("ensure_operator")
        assert "Made an operator login: operator / " in capsys.readouterr().out
        user = User.objects.get(username="operator")
        assert role_of(user) == Role.OPERATOR and not user.is_superuser

    def test_a_login_that_was_a_viewer_becomes_an_operator(self, capsys):
        user_with_role(Role.VIEWER, "operator")
        call_command("ensure_operator")
        assert "Log in as 'operator'" in capsys.readouterr().out
        assert role_of(User.objects.get(username="operator")) == Role.OPERATOR

    def test_an_admin_stays_an_admin(self):
        User.objects.create_superuser("operator")
        call_command("ensure_operator")
        assert role_of(User.objects.get(username="operator")) == Role.ADMIN


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_what_each_user_had_and_goes_back():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("accounts")
    executor.migrate([("accounts", None)])
    assert not Group.objects.filter(name__in=["Viewers", "Operators", "Admins"]).exists()
    User.objects.create_user("staff", is_staff=True)
    User.objects.create_user("plain")
    User.objects.create_superuser("root")
    already = User.objects.create_user("already")
    already.groups.add(Group.objects.create(name="Viewers"))

    executor = MigrationExecutor(connection)
    executor.migrate(latest)

    roles = {u.username: role_of(u) for u in User.objects.all()}
    assert roles == {
        "staff": Role.ADMIN,
        "plain": Role.OPERATOR,
        "root": Role.ADMIN,
        "already": Role.VIEWER,
    }
    assert set(User.objects.get(username="root").groups.values_list("name", flat=True)) == {
        "Admins"
    }

    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", None)])
    assert User.objects.count() == 4
    assert not Group.objects.filter(name__in=["Viewers", "Operators", "Admins"]).exists()
    MigrationExecutor(connection).migrate(latest)
