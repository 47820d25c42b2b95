import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attempts.models import Attempt, Status, WebhookEvent
from attempts.paging import PAGE_SIZE
from pages import exports
from seam.ingest import record_event


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def make_attempts(n: int) -> list[Attempt]:
    now = timezone.now()
    types = ["LOCK_DOOR", "UNLOCK_DOOR", "SET_HVAC_MODE"]
    statuses = [Status.SUCCESS, Status.ERROR, Status.PENDING, Status.ERROR]
    attempts = []
    for i in range(n):
        status = statuses[i % 4]
        attempts.append(
            Attempt(
                action_attempt_id=f"aa_{i:04d}",
                action_type=types[i % 3],
                status=status,
                first_seen_at=now - timedelta(minutes=i // 2),
                ended_at=now if status != Status.PENDING else None,
                error={"type": "device_offline", "message": "Offline."}
                if status == Status.ERROR
                else None,
                error_type="device_offline" if status == Status.ERROR else "",
            )
        )
    return Attempt.objects.bulk_create(attempts)


@pytest.mark.django_db
class TestAttemptsExport:
    def test_it_needs_a_login(self, client):
        response = client.get("/attempts/export.csv")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_it_exports_every_page_newest_first(self, admin_client):
        make_attempts(PAGE_SIZE * 3 + 5)
        rows = read_csv(admin_client.get("/attempts/export.csv"))
        assert ",".join(rows[0]).startswith("action_attempt_id,action_type,status")
        expected = Attempt.objects.order_by("-first_seen_at", "-id")
        assert [r[0] for r in rows[1:]] == [a.action_attempt_id for a in expected]

    def test_it_exports_exactly_the_filtered_rows(self, admin_client):
        attempts = make_attempts(200)
        url = "/attempts/export.csv?action_type=LOCK_DOOR&status=error&after=123_4"
        rows = read_csv(admin_client.get(url))
        header = rows[0]
        chosen = sorted(
            (a for a in attempts if a.action_type == "LOCK_DOOR" and a.status == Status.ERROR),
            key=lambda a: (a.first_seen_at, a.pk),
            reverse=True,
        )
        assert len(chosen) > 10
        assert [r[0] for r in rows[1:]] == [a.action_attempt_id for a in chosen]
        first = dict(zip(header, rows[1], strict=True))
        assert first["action_type"] == "LOCK_DOOR" and first["status"] == "error"
        assert first["error_type"] == "device_offline" and first["error_message"] == "Offline."

    def test_it_defuses_formulas_from_untrusted_values(self, admin_client):
        Attempt.objects.create(
            action_attempt_id="=cmd|' /C calc'!A0",
            action_type="+SUM(A1)",
            status=Status.ERROR,
            error={"type": "@evil", "message": "-2+3"},
            error_type="@evil",
        )
        header, row = read_csv(admin_client.get("/attempts/export.csv"))
        first = dict(zip(header, row, strict=True))
        assert first["action_attempt_id"] == "'=cmd|' /C calc'!A0"
        assert first["action_type"] == "'+SUM(A1)"
        assert first["error_type"] == "'@evil" and first["error_message"] == "'-2+3"

    def test_it_writes_payloads_and_durations(self, admin_client):
        now = timezone.now()
        Attempt.objects.create(
            action_attempt_id="aa_ok",
            action_type="LOCK_DOOR",
            status=Status.SUCCESS,
            first_seen_at=now - timedelta(seconds=2.5),
            ended_at=now,
            result={"was_confirmed_by_device": False},
        )
        # Untrusted payloads of any shape: an error that is not an object exports, blank.
        Attempt.objects.create(action_attempt_id="aa_odd", status=Status.ERROR, error=["x"])
        rows = read_csv(admin_client.get("/attempts/export.csv"))
        by_id = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
        assert by_id["aa_ok"]["seconds_to_resolution"] == "2.500"
        assert json.loads(by_id["aa_ok"]["result"]) == {"was_confirmed_by_device": False}
        assert by_id["aa_ok"]["first_seen_at"].startswith(str(now.year))
        assert by_id["aa_odd"]["error_type"] == "" and by_id["aa_odd"]["result"] == ""

    def test_times_are_iso_8601_in_utc_to_the_microsecond_or_second(self, admin_client):
        started = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
        ended = started + timedelta(microseconds=1500)
        Attempt.objects.create(
            action_attempt_id="aa_t", status=Status.SUCCESS, first_seen_at=started, ended_at=ended
        )
        header, row = read_csv(admin_client.get("/attempts/export.csv"))
        got = dict(zip(header, row, strict=True))
        assert got["first_seen_at"] == "2026-11-03T04:05:06+00:00"
        assert got["ended_at"] == "2026-11-03T04:05:06.001500+00:00"
        assert got["seconds_to_resolution"] == "0.002"

    def test_it_rejects_invalid_filters(self, admin_client):
        response = admin_client.get("/attempts/export.csv?status=lost")
        assert response.status_code == 400
        assert b"status" in response.content and b"lost" in response.content
        assert admin_client.get("/attempts/export.csv?after=nope").status_code == 400


@pytest.mark.django_db
class TestEventsExport:
    def test_it_needs_a_login(self, client):
        assert client.get("/events/export.csv").status_code == 302

    def test_it_exports_exactly_the_filtered_rows(self, admin_client):
        for n in range(60):
            outcome = "failed" if n % 3 else "succeeded"
            record_event(
                {
                    "event_id": f"evt_{n}",
                    "event_type": f"action_attempt.lock_door.{outcome}",
                    "action_attempt_id": f"aa_{n % 7}",
                    "status": "error" if n % 3 else "success",
                }
            )
        record_event(
            {"event_id": "evt_lock", "event_type": "lock.locked", "action_attempt_id": "x"}
        )
        rows = read_csv(admin_client.get("/events/export.csv"))
        assert ",".join(rows[0]).startswith("event_id,event_type,action_attempt_id")
        everything = WebhookEvent.objects.order_by("-received_at", "-id")
        assert [r[0] for r in rows[1:]] == [e.event_id for e in everything]
        assert rows[1][:3] == ["evt_lock", "lock.locked", "x"]

        url = "/events/export.csv?event_type=action_attempt.lock_door.failed&q=aa_3"
        rows = read_csv(admin_client.get(url))
        expected = [f"evt_{n}" for n in reversed(range(60)) if n % 3 and n % 7 == 3]
        assert [r[0] for r in rows[1:]] == expected
        assert {r[2] for r in rows[1:]} == {"aa_3"}

    def test_it_rejects_invalid_filters(self, admin_client):
        response = admin_client.get("/events/export.csv?event_type=" + "x" * 300)
        assert response.status_code == 400 and b"event_type" in response.content


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# The export's contract: its first line.
HEADER = (
    "action_attempt_id,action_type,status,first_seen_at,ended_at,seconds_to_resolution,"
    "error_type,error_message,result,workspace_id"
).split(",")

# Attempts whose cells are hard to write, newest first, each with the cells a CSV reader must
# read back. Python's format() rounds the binary value of total_seconds(): 400 days and 500 µs
# round up, 1 s and 500 µs down.
TRICKY = [
    (
        {
            "action_attempt_id": 'aa_"quoted", with a comma',
            "action_type": "=1+2",
            "status": Status.ERROR,
            "first_seen_at": at(2026, 11, 3, 4, 5, 6),
            "ended_at": at(2026, 11, 3, 4, 5, 6, 1500),
            "error": {"type": "+t", "message": 'He said "hi",\nthen\r\nleft'},
            "error_type": "+t",
            "workspace_id": "@ws",
        },
        [
            'aa_"quoted", with a comma',
            "'=1+2",
            "error",
            "2026-11-03T04:05:06+00:00",
            "2026-11-03T04:05:06.001500+00:00",
            "0.002",
            "'+t",
            'He said "hi",\nthen\r\nleft',
            "",
            "'@ws",
        ],
    ),
    (
        {
            "action_attempt_id": "-1",
            "action_type": "\tTAB",
            "status": Status.SUCCESS,
            "first_seen_at": at(2026, 11, 2, 1, 2, 3, 123456),
            "ended_at": at(2026, 11, 2, 1, 2, 3, 123456) + timedelta(days=400, microseconds=500),
            "result": {"a": "x,y", "ok": True},
            "workspace_id": "\rws",
        },
        [
            "'-1",
            "'\tTAB",
            "success",
            "2026-11-02T01:02:03.123456+00:00",
            "2027-12-07T01:02:03.123956+00:00",
            "34560000.001",
            "",
            "",
            '{"a": "x,y", "ok": true}',
            "'\rws",
        ],
    ),
    (
        {
            "action_attempt_id": "ü-🔒-ß",
            "action_type": "LOCK_DOOR",
            "status": Status.PENDING,
            "first_seen_at": at(2026, 11, 1, 12, 0, 0, 1),
            "workspace_id": "Zürich ☃",
        },
        ["ü-🔒-ß", "LOCK_DOOR", "pending", "2026-11-01T12:00:00.000001+00:00"]
        + ["", "", "", "", "", "Zürich ☃"],
    ),
    (
        {
            "action_attempt_id": "aa_before",
            "action_type": "SET_HVAC_MODE",
            "status": Status.ERROR,
            "first_seen_at": at(2026, 10, 31, 23, 59, 59, 999999),
            "ended_at": at(2026, 10, 31, 23, 59, 59, 998499),
            "error": {"type": "é"},
            "error_type": "é",
            "result": {},
        },
        ["aa_before", "SET_HVAC_MODE", "error", "2026-10-31T23:59:59.999999+00:00"]
        + ["2026-10-31T23:59:59.998499+00:00", "-0.002", "é", "", "{}", ""],
    ),
    (
        {
            "action_attempt_id": "'quoted",
            "action_type": " =x",
            "status": Status.SUCCESS,
            "first_seen_at": at(2026, 10, 30, 8, 0, 0),
            "ended_at": at(2026, 10, 30, 8, 0, 1, 500),
            "error": {"message": 42},
            "result": -5,
            "workspace_id": "a=b",
        },
        [
            "'quoted",
            " =x",
            "success",
            "2026-10-30T08:00:00+00:00",
            "2026-10-30T08:00:01.000500+00:00",
        ]
        + ["1.000", "", "42", "'-5", "a=b"],
    ),
    (
        {
            "action_attempt_id": "aa_odd",
            "status": Status.ERROR,
            "first_seen_at": at(2026, 10, 29, 0, 0, 0),
            "error": ["x"],
            "result": "=HYPERLINK()",
        },
        ["aa_odd", "", "error", "2026-10-29T00:00:00+00:00", "", "", "", "", '"=HYPERLINK()"', ""],
    ),
    (
        {
            "action_attempt_id": "aa_ages",
            "status": Status.SUCCESS,
            "first_seen_at": at(1, 1, 1, 0, 0, 0, 1),
            "ended_at": at(9999, 12, 31, 23, 59, 59, 999999),
            "workspace_id": "ws,1",
        },
        ["aa_ages", "", "success", "0001-01-01T00:00:00.000001+00:00"]
        + ["9999-12-31T23:59:59.999999+00:00", "315537897600.000", "", "", "", "ws,1"],
    ),
]


def written(rows: list[list[str]]) -> bytes:
    """What csv.writer writes for these cells (quoting only where needed, rows ended by \\r\\n),
    as the export always has."""
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def export(client, query: str = "") -> bytes:
    response = client.get(f"/attempts/export.csv{query}")
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content)


def cells(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(), newline="")))


@pytest.mark.django_db
class TestAttemptCells:
    def test_it_writes_tricky_values_as_csv_writer_does(self, admin_client):
        for fields, _ in TRICKY:
            Attempt.objects.create(**fields)
        expected = [HEADER] + [row for _, row in TRICKY]
        body = export(admin_client)
        assert cells(body) == expected
        assert body == written(expected)

    def test_it_writes_the_same_while_queries_are_logged(self, admin_client):
        # As with DEBUG: the cursor that logs queries wraps PostgreSQL's COPY its own way.
        for fields, _ in TRICKY[:2]:
            Attempt.objects.create(**fields)
        with CaptureQueriesContext(connection) as queries:
            body = export(admin_client)
        assert body == written([HEADER] + [row for _, row in TRICKY[:2]])
        assert any('ORDER BY "attempts_attempt"' in q["sql"] for q in queries.captured_queries)

    def test_an_empty_export_is_its_header(self, admin_client):
        Attempt.objects.create(action_attempt_id="aa_1", action_type="LOCK_DOOR")
        assert export(admin_client, "?action_type=SET_FAN_MODE") == written([HEADER])

    def test_the_filters_choose_the_rows(self, admin_client):
        for fields, _ in TRICKY:
            Attempt.objects.create(**fields)
        ids = {
            "?action_type=SET_HVAC_MODE&status=error": ["aa_before"],
            "?status=success": ["-1", "'quoted", "aa_ages"],
            "?error_type=é": ["aa_before"],
            "?since=2026-10-30T00:00&until=2026-11-02T00:00": ["ü-🔒-ß", "aa_before", "'quoted"],
            "?q=aa_od": ["aa_odd"],
            "?q=ote": ['aa_"quoted", with a comma', "'quoted"],
        }
        rows = {fields["action_attempt_id"]: row for fields, row in TRICKY}
        for query, chosen in ids.items():
            expected = [HEADER] + [rows[i] for i in chosen]
            assert export(admin_client, query) == written(expected), query

    def test_filter_values_are_bound_not_spliced_into_the_sql(self, admin_client):
        Attempt.objects.create(action_attempt_id="aa_1", action_type="x' OR 'a'='a")
        hostile = "?action_type=x%27%29%3B+DELETE+FROM+attempts_attempt%3B+--&q=%25%27_"
        assert export(admin_client, hostile) == written([HEADER])
        got = cells(export(admin_client, "?action_type=x%27+OR+%27a%27%3D%27a"))
        assert [r[:2] for r in got[1:]] == [["aa_1", "x' OR 'a'='a"]]
        assert Attempt.objects.count() == 1

    def test_times_and_durations_are_python_s_isoformat_and_total_seconds(self, admin_client):
        # Microseconds of 0 and of every rounding case: ...500 rounds by the binary value.
        rng = random.Random(7)
        start = at(2026, 6, 1)
        attempts = []
        for i in range(400):
            first = start + timedelta(seconds=i, microseconds=rng.choice([0, rng.randrange(10**6)]))
            micros = rng.randrange(10**4) * 1000 + rng.choice([0, 500, rng.randrange(1000)])
            took = timedelta(days=rng.choice([0, 0, 3, 1000]), microseconds=micros)
            attempts.append(
                Attempt(
                    action_attempt_id=f"aa_{i}",
                    status=Status.SUCCESS,
                    first_seen_at=first,
                    ended_at=first + took,
                )
            )
        Attempt.objects.bulk_create(attempts)
        got = cells(export(admin_client))[1:]
        assert [(r[0], r[3], r[4], r[5]) for r in got] == [
            (
                a.action_attempt_id,
                a.first_seen_at.isoformat(),
                a.ended_at.isoformat(),
                f"{(a.ended_at - a.first_seen_at).total_seconds():.3f}",
            )
            for a in reversed(attempts)
        ]

    def test_it_streams_in_chunks(self, admin_client, monkeypatch):
        monkeypatch.setattr(exports, "CHUNK_SIZE", 4)
        make_attempts(10)
        response = admin_client.get("/attempts/export.csv")
        chunks = list(response.streaming_content)
        assert len(chunks) == 3  # the header and 3 rows, 4 rows, 3 rows
        assert len(cells(b"".join(chunks))) == 11


@pytest.mark.django_db(transaction=True)
def test_a_stream_stopped_midway_leaves_the_connection_usable(admin_client, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)
    make_attempts(500)
    response = admin_client.get("/attempts/export.csv")
    first = next(iter(response.streaming_content))
    assert first.startswith(b"action_attempt_id,")
    response.close()  # as the server does when the client goes away
    assert Attempt.objects.count() == 500
    assert len(cells(export(admin_client))) == 501
