"""Users of each role, as the tests log in."""

from django.contrib.auth.models import User
from django.test import Client

from accounts.access import Role, give_role


def user_with_role(role: Role, username: str = "", password: str | None = None) -> User:
    """A local user of this role (in its group; the group is made if a test flushed it)."""
    user = User.objects.create_user(username or role.label, password=password)
    give_role(user, role)
    return user


def logged_in(client: Client, role: Role, username: str = "") -> Client:
    """The client, logged in as a new user of this role (`client.user`)."""
    client.user = user_with_role(role, username)
    client.force_login(client.user)
    return client
