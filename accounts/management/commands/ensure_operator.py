import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.access import Role, give_role, may


class Command(BaseCommand):
    help = "Makes sure an operator login exists, and prints it when it is new."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(username=username, email="", password=password)
            give_role(user, Role.OPERATOR)
            self.stdout.write(f"Made an operator login: {username} / {password}")
            return
        if not may(user, Role.OPERATOR):
            give_role(user, Role.OPERATOR)
        self.stdout.write(
            f"Log in as {username!r} (password as printed when it was made; "
            f"`python manage.py changepassword {username}` sets a new one)."
        )
