import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Makes sure an operator login exists, and prints it when it is new."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Log in as {username!r} (password as printed when it was made; "
                f"`python manage.py changepassword {username}` sets a new one)."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"Made an operator login: {username} / {password}")
