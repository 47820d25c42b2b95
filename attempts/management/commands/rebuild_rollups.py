"""`python manage.py rebuild_rollups`: recomputes the rollups from the attempts, an hour at a
time, while webhooks go on landing (attempts/rebuild.py)."""

import time

from django.core.management.base import BaseCommand

from attempts.rebuild import rebuild


class Command(BaseCommand):
    help = (
        "Recomputes the hourly and daily counts and resolution times from the attempts, an hour "
        "at a time (safe while webhooks land; a second run meanwhile skips). Hours before the "
        "oldest attempt (pruned) keep theirs unless --all."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all", action="store_true", help="also forget the rollups of pruned hours"
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        rebuilt = rebuild(everything=options["all"])
        if rebuilt is None:
            self.stdout.write("rebuild_rollups outcome=skipped reason=another_rebuild_running")
            return
        self.stdout.write(
            f"rebuild_rollups outcome=ok hours={rebuilt.hours} days={rebuilt.days} "
            f"corrected={rebuilt.corrected} seconds={time.monotonic() - started:.1f}"
        )
