import threading

import pytest
from django.db import connection

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, StatusChange

ERROR = {"type": "device_offline", "message": "The lock is offline"}
RESULT = {"was_confirmed_by_device": True}

# stored status (None: never seen), incoming status -> status after the merge, conflict recorded
CASES = [
    (None, "pending", "pending", False),
    (None, "success", "success", False),
    (None, "error", "error", False),
    ("pending", "pending", "pending", False),
    ("pending", "success", "success", False),
    ("pending", "error", "error", False),
    ("success", "pending", "success", False),
    ("success", "success", "success", False),
    ("success", "error", "success", True),
    ("error", "pending", "error", False),
    ("error", "success", "error", True),
    ("error", "error", "error", False),
]


def store(status: str) -> Attempt:
    return merge(
        "aa1", Observation(status=status, action_type="LOCK_DOOR"), source=Source.WEBHOOK
    ).attempt


@pytest.mark.django_db
class TestMerge:
    @pytest.mark.parametrize("stored,incoming,expected,conflict", CASES)
    def test_every_pair_of_statuses(self, stored, incoming, expected, conflict):
        if stored:
            store(stored)
        history_before = StatusChange.objects.count()

        merged = merge("aa1", Observation(status=incoming), source=Source.WEBHOOK)

        attempt = Attempt.objects.get(action_attempt_id="aa1")
        assert attempt.status == expected
        assert merged.conflict is conflict
        changed = stored is None or (stored == "pending" and incoming != "pending")
        assert merged.status_changed is changed
        new_rows = StatusChange.objects.order_by("id")[history_before:]
        if changed or conflict:
            [row] = new_rows
            assert (row.from_status, row.to_status, row.conflict) == (
                stored or "",
                incoming,
                conflict,
            )
        else:
            assert list(new_rows) == []
        assert (attempt.ended_at is not None) == (expected != "pending")

    def test_it_keeps_the_first_end_time(self):
        ended_at = store("error").ended_at
        merge("aa1", Observation(status="success"), source=Source.WEBHOOK)
        assert Attempt.objects.get().ended_at == ended_at

    def test_api_payload_fills_in_a_webhook_terminal_attempt(self):
        store("error")
        assert Attempt.objects.get().payload_fetched is False

        api = {"action_attempt_id": "aa1", "status": "error", "error": ERROR, "result": None}
        merge("aa1", Observation.from_api(api), source=Source.API)

        attempt = Attempt.objects.get()
        assert (attempt.error, attempt.payload_fetched) == (ERROR, True)
        assert attempt.fetched_at is not None

    def test_a_payload_is_not_overwritten_once_fetched(self):
        api = {"status": "success", "result": RESULT, "error": None}
        merge("aa1", Observation.from_api(api), source=Source.API)
        merge("aa1", Observation.from_api({**api, "result": {"other": 1}}), source=Source.API)
        assert Attempt.objects.get().result == RESULT

    def test_a_conflicting_payload_is_not_applied(self):
        store("success")
        api = {"status": "error", "error": ERROR, "result": None}
        merged = merge("aa1", Observation.from_api(api), source=Source.API)
        attempt = Attempt.objects.get()
        assert merged.conflict
        assert (attempt.status, attempt.error, attempt.payload_fetched) == ("success", None, False)

    def test_a_fetch_that_changes_nothing_keeps_updated_at(self):
        api = {"status": "pending", "action_type": "LOCK_DOOR", "result": None, "error": None}
        updated_at = merge("aa1", Observation.from_api(api), source=Source.API).attempt.updated_at
        merge("aa1", Observation.from_api(api), source=Source.API)
        assert Attempt.objects.get().updated_at == updated_at

    def test_an_unseen_action_type_is_stored(self):
        merge("aa1", Observation(status="pending", action_type="SET_HEAT_COOL"), source=Source.API)
        assert Attempt.objects.get().action_type == "SET_HEAT_COOL"

    def test_it_rejects_an_unknown_status(self):
        with pytest.raises(ValueError):
            merge("aa1", Observation(status="cancelled"), source=Source.API)
        assert not Attempt.objects.exists()


@pytest.mark.django_db(transaction=True)
class TestConcurrentMerge:
    def run_at_once(self, statuses: list[str]) -> list:
        barrier = threading.Barrier(len(statuses))
        outcomes, errors = [], []

        def worker(status: str) -> None:
            try:
                barrier.wait(timeout=10)
                outcomes.append(merge("aa1", Observation(status=status), source=Source.WEBHOOK))
            except Exception as exc:  # collected, asserted below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(s,)) for s in statuses]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        return outcomes

    def test_one_creation_when_many_see_a_new_attempt(self):
        outcomes = self.run_at_once(["pending"] * 6)
        assert sum(o.created for o in outcomes) == 1
        assert Attempt.objects.count() == 1
        assert StatusChange.objects.count() == 1

    def test_one_terminal_status_wins_and_the_other_is_a_conflict(self):
        store("pending")
        self.run_at_once(["success", "error"] * 4)

        attempt = Attempt.objects.get()
        history = list(attempt.history.order_by("id"))
        applied = [h for h in history if not h.conflict and h.from_status == "pending"]
        conflicts = [h for h in history if h.conflict]
        assert len(applied) == 1
        assert applied[0].to_status == attempt.status
        # Every later delivery of the other status is a conflict; repeats of the winner are not.
        assert len(conflicts) == 4
        assert {c.to_status for c in conflicts} == {"success", "error"} - {attempt.status}
