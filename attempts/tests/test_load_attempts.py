from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Max, Min
from django.utils import timezone

from attempts.models import Attempt, Status


@pytest.mark.django_db
class TestLoadAttempts:
    def load(self, *args: str) -> str:
        out, err = StringIO(), StringIO()
        call_command("load_attempts", *args, stdout=out, stderr=err)
        return out.getvalue() + err.getvalue()

    def test_it_loads_a_realistic_mix(self):
        output = self.load("2000", "--batch-size", "300", "--seed", "7")
        assert Attempt.objects.count() == 2000
        assert "2,000/2,000" in output and "Loaded 2,000 attempts" in output

        by_status = {s: Attempt.objects.filter(status=s).count() for s in Status.values}
        assert by_status[Status.PENDING] > 0
        assert by_status[Status.ERROR] > 50
        assert by_status[Status.SUCCESS] > by_status[Status.ERROR]
        assert Attempt.objects.values("action_type").distinct().count() >= 10

        for attempt in Attempt.objects.filter(status=Status.ERROR)[:50]:
            assert set(attempt.error) == {"type", "message"} and attempt.result is None
            assert attempt.ended_at >= attempt.first_seen_at and attempt.payload_fetched
        pending = Attempt.objects.filter(status=Status.PENDING)
        assert not pending.filter(ended_at__isnull=False).exists()
        assert not pending.filter(payload_fetched=True).exists()

        span = Attempt.objects.aggregate(lo=Min("first_seen_at"), hi=Max("first_seen_at"))
        assert span["hi"] - span["lo"] > timedelta(weeks=3)
        assert span["hi"] <= timezone.now()
        # Loaded as they would arrive, oldest first (pending ones are the newest).
        ended = list(
            Attempt.objects.exclude(status=Status.PENDING)
            .order_by("id")
            .values_list("first_seen_at")
        )
        assert ended == sorted(ended)

    def test_it_adds_to_what_is_there(self):
        self.load("10", "--seed", "1")
        self.load("15", "--seed", "2")
        assert Attempt.objects.count() == 25

    def test_it_rejects_a_negative_count(self):
        with pytest.raises(CommandError):
            self.load("-1")
