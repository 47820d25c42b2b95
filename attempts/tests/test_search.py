import csv
import io

import pytest
from django.db import connection

from attempts import search
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source, StatusChange, WebhookEvent

# Ids holding what FTS5's query syntax and LIKE's wildcards mean, and decoys they would match
# if they were read as syntax.
IDS = [
    'id"quote"1',
    "star*id",
    "stariid",
    "dash-id",
    "dash id",
    "caret^id",
    "NEARid",
    "a NEAR(b c)",
    "x OR y",
    "xy",
    "pct%id",
    "pctXid",
    "under_id",
    "underXid",
    "back\\slash",
    "e92b18b8-9f18-4ef9-886a-c82984d180b5",
]
QUERIES = [
    '"qu',
    'te"1',
    '"',
    "r*i",
    "*id",
    "h-i",
    "-id",
    "t^i",
    "^id",
    "NEAR",
    "NEAR(b",
    " OR ",
    "OR y",
    "t%i",
    "%id",
    "r_i",
    "_id",
    "k\\s",
    "9f18-4ef9-886a",
    "e92b",
    "ID",
    "%",
    "_",
    "*",
    "st",
]


def expected(q: str) -> list[str]:
    q = q.strip()  # as the form cleans it
    if q in IDS:
        return [q]
    if len(q) >= 3:
        return sorted(i for i in IDS if q in i)
    return sorted(i for i in IDS if i.startswith(q))


@pytest.fixture
def recorded():
    for action_attempt_id in IDS:
        merge(action_attempt_id, Observation(status="pending"), source=Source.WEBHOOK)


@pytest.mark.django_db
class TestAnyPartOfAnId:
    @pytest.mark.parametrize("q", QUERIES)
    def test_q_is_data_on_the_list(self, admin_client, recorded, q):
        response = admin_client.get("/attempts/", {"q": q})

        assert response.status_code == 200
        found = sorted(a.action_attempt_id for a in response.context["page"].rows)
        assert found == expected(q)
        assert response.context["stats"]["total"] == len(expected(q))

    @pytest.mark.parametrize("q", ["9f18-4ef9-886a", "*id", "_id", "%id", 'te"1', "NEAR"])
    def test_more_matches_than_few_are_searched_within_the_list_query(
        self, admin_client, recorded, monkeypatch, q
    ):
        monkeypatch.setattr(search, "FEW_MATCHES", 0)

        response = admin_client.get("/attempts/", {"q": q})

        found = sorted(a.action_attempt_id for a in response.context["page"].rows)
        assert found == expected(q)
        assert response.context["stats"]["total"] == len(expected(q))

    @pytest.mark.parametrize("q", ["9f18-4ef9-886a", 'id"q', "r_i", "%id"])
    def test_q_is_data_in_the_export(self, admin_client, recorded, q):
        response = admin_client.get("/attempts/export.csv", {"q": q})

        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert sorted(r[0].lstrip("'") for r in rows[1:]) == expected(q)

    def test_a_new_attempt_is_found_by_its_middle_and_a_deleted_one_no_more(self, admin_client):
        merge("aa-new-middle-1", Observation(status="pending"), source=Source.WEBHOOK)
        assert admin_client.get("/attempts/?q=middle").context["stats"]["total"] == 1

        StatusChange.objects.filter(attempt__action_attempt_id="aa-new-middle-1").delete()
        Attempt.objects.filter(action_attempt_id="aa-new-middle-1").delete()
        merge("aa-other", Observation(status="pending"), source=Source.WEBHOOK)
        response = admin_client.get("/attempts/?q=middle")
        assert list(response.context["page"].rows) == []

    @pytest.mark.parametrize("q", ["evt", "t_%", '"ev', "2-b", "NEAR", "*"])
    def test_q_is_data_on_the_events_page(self, admin_client, q):
        ids = ["evt_1", "evt_%2", "evt-2-b", '"evt"3', "NEAR evt", "evt*"]
        for n, event_id in enumerate(ids):
            WebhookEvent.objects.create(
                event_id=event_id,
                event_type="lock.locked",
                payload={"event_id": event_id, "event_type": "lock.locked", "device_id": f"d{n}"},
                svix_id=f"msg_{n}",
            )

        response = admin_client.get("/events/", {"q": q})

        assert response.status_code == 200
        body = response.content.decode()
        shown = {i for i in ids if f"<code>{_escaped(i)}</code>" in body}
        wanted = {i for i in ids if q in i} if len(q) >= 3 else {i for i in ids if i == q}
        assert shown == wanted
        assert WebhookEvent.objects.count() == len(ids)


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;")


@pytest.mark.django_db
class TestIndexCatchUp:
    @pytest.mark.parametrize("catch_up_after", [0, 1000])
    def test_rows_after_the_watermark_are_found_and_then_indexed(
        self, admin_client, monkeypatch, catch_up_after
    ):
        monkeypatch.setattr(search, "CATCH_UP_AFTER", catch_up_after)
        for n in range(5):
            merge(f"aa-{n}-tail", Observation(status="pending"), source=Source.WEBHOOK)

        for _ in range(2):  # before and after the tail is indexed (or scanned again)
            response = admin_client.get("/attempts/?q=-tail")
            assert len(response.context["page"].rows) == 5
        StatusChange.objects.filter(attempt__action_attempt_id="aa-0-tail").delete()
        Attempt.objects.filter(action_attempt_id="aa-0-tail").delete()
        assert len(admin_client.get("/attempts/?q=-tail").context["page"].rows) == 4

    def test_a_long_tail_is_indexed_a_batch_per_search(self, admin_client, monkeypatch):
        monkeypatch.setattr(search, "CATCH_UP_AFTER", 2)
        monkeypatch.setattr(search, "CATCH_UP_ROWS", 3)
        for n in range(10):
            merge(f"bb-{n}-long", Observation(status="pending"), source=Source.WEBHOOK)

        for _ in range(4):
            response = admin_client.get("/attempts/?q=-long")
            assert len(response.context["page"].rows) == 10
        if connection.vendor == "sqlite":
            tail = search.last_id("attempts_attempt") - search.watermark("attempts_attempt")
            assert tail <= search.CATCH_UP_AFTER


class TestTrigrams:
    def test_it_covers_a_beginning_from_its_first_to_its_last_character(self):
        text = "e92b18b8"
        picked = search.trigrams(text)

        assert len(picked) == search.PICKED
        covered = {i for t in picked for i in range(text.index(t), text.index(t) + 3)}
        assert covered == set(range(len(text)))

    def test_it_skips_trigrams_holding_a_dash(self):
        assert search.trigrams("9f18-4ef9-886a") == ["9f1", "4ef", "86a"]

    def test_it_takes_what_there_is_of_a_short_text(self):
        assert search.trigrams("abc") == ["abc"]
        assert search.trigrams("a-b-c") == ["a-b", "-b-", "b-c"]
