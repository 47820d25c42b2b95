import pytest

from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, StatusChange
from seam.client import SeamUnavailable
from seam.refresh import attempts_needing_fetch, fetch_and_merge

ERROR = {"type": "device_offline", "message": "The lock is offline"}
RESULT = {"was_confirmed_by_device": True}


@pytest.mark.django_db
class TestFetchAndMerge:
    @pytest.mark.seam
    def test_it_merges_what_seam_answers(self, seam):
        done, failed, waiting = seam.lock_door(), seam.unlock_door(), seam.lock_door()
        seam.set_attempt(done["action_attempt_id"], "success", result=RESULT)
        seam.set_attempt(failed["action_attempt_id"], "error", error=ERROR)
        seam.set_attempt(waiting["action_attempt_id"], "pending")
        for attempt in (done, failed):
            merge(attempt["action_attempt_id"], Observation("pending"), source=Source.WEBHOOK)
        ids = [a["action_attempt_id"] for a in (done, failed, waiting)] + ["action_attempt_x"]

        merged = fetch_and_merge(ids)

        assert {m.attempt.action_attempt_id for m in merged} == set(ids[:3])
        by_id = {a.action_attempt_id: a for a in Attempt.objects.all()}
        assert set(by_id) == set(ids[:3])
        assert (by_id[ids[0]].status, by_id[ids[0]].result) == ("success", RESULT)
        assert (by_id[ids[1]].status, by_id[ids[1]].error) == ("error", ERROR)
        assert by_id[ids[1]].payload_fetched and by_id[ids[1]].action_type == "UNLOCK_DOOR"
        assert by_id[ids[2]].status == "pending" and by_id[ids[2]].fetched_at
        assert StatusChange.objects.filter(source=Source.API, to_status="error").count() == 1

    def test_no_ids_make_no_call(self, settings):
        settings.SEAM_API_KEY = ""  # a call would raise SeamNotConfigured
        assert fetch_and_merge([]) == []

    @pytest.mark.seam
    def test_an_outage_raises_and_changes_nothing(self, seam):
        attempt = seam.lock_door()
        merge(attempt["action_attempt_id"], Observation("pending"), source=Source.WEBHOOK)
        seam.outage(["/action_attempts/list"])
        with pytest.raises(SeamUnavailable):
            fetch_and_merge([attempt["action_attempt_id"]])
        assert Attempt.objects.get().status == "pending"


@pytest.mark.django_db
def test_attempts_needing_fetch():
    merge("pending", Observation("pending"), source=Source.WEBHOOK)
    merge("ended_by_webhook", Observation("error"), source=Source.WEBHOOK)
    merge("fetched", Observation("success", has_payload=True, result=RESULT), source=Source.API)
    ids = set(attempts_needing_fetch().values_list("action_attempt_id", flat=True))
    assert ids == {"pending", "ended_by_webhook"}
