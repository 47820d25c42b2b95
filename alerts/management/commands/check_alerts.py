"""Evaluates every enabled alert rule once and sends the notices due (cron: every minute)."""

import time

from django.core.management.base import BaseCommand, CommandError

from alerts.evaluation import evaluate


class Command(BaseCommand):
    help = "Evaluates every enabled alert rule once and sends the notices that are due."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every",
            type=int,
            default=0,
            metavar="SECONDS",
            help="keep evaluating, once per this many seconds (demo mode); default: once",
        )

    def handle(self, *args, every: int, **options):
        if every < 0:
            raise CommandError("--every is a number of seconds, 0 or more.")
        while True:
            started = time.monotonic()
            outcome = evaluate()
            self.stdout.write(outcome.line())
            if not every:
                if outcome.errors:
                    raise CommandError(f"rules that could not be evaluated: {outcome.errors}")
                return
            time.sleep(max(0.0, every - (time.monotonic() - started)))
