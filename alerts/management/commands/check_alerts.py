"""Evaluates every enabled alert rule once and sends the notices due (cron: every minute)."""

import logging
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from alerts.evaluation import evaluate

log = logging.getLogger(__name__)


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
            if not every:
                outcome = evaluate()
                self.stdout.write(outcome.line())
                if outcome.errors:
                    raise CommandError(f"rules that could not be evaluated: {outcome.errors}")
                return
            close_old_connections()  # a connection the database dropped is not reused
            try:
                self.stdout.write(evaluate().line())
                self.stdout.flush()
            except Exception:  # the database restarting, say: the next minute tries again
                log.exception("check_alerts outcome=error")
            time.sleep(max(0.0, every - (time.monotonic() - started)))
