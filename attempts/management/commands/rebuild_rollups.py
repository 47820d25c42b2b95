"""`python manage.py rebuild_rollups`: recomputes the hourly rollups from the attempts."""

import time

from django.core.management.base import BaseCommand

from attempts import rollups


class Command(BaseCommand):
    help = (
        "Recomputes the hourly counts and resolution times from the attempts. Hours before the "
        "oldest attempt (pruned) keep theirs unless --all."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="also forget the rollups of pruned hours"
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        counts, resolutions = rollups.rebuild(everything=options["all"])
        self.stdout.write(
            f"Rebuilt {counts:,} hourly counts and {resolutions:,} resolution buckets "
            f"in {time.monotonic() - started:.1f} s."
        )
