from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attempts import filters, rollups
from attempts.counts import stats_key
from attempts.filters import filtered_attempts
from attempts.merge import error_type_of
from attempts.models import Attempt
from attempts.paging import PAGE_SIZE, Cursor

NOW = timezone.now()


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_user("operator"))
    return client


def add(action_attempt_id: str, status="pending", action_type="LOCK_DOOR", minutes_ago=0, **kw):
    """An attempt as a bulk load stores it: counted in the rollups, as merge() would."""
    attempt = Attempt.objects.create(
        action_attempt_id=action_attempt_id,
        status=status,
        action_type=action_type,
        first_seen_at=NOW - timedelta(minutes=minutes_ago),
        error_type=error_type_of(kw.get("error")),
        **kw,
    )
    rollups.count([attempt])
    return attempt


def shown(response) -> list[str]:
    return [a.action_attempt_id for a in response.context["page"].rows]


@pytest.mark.django_db
class TestAttemptList:
    def test_it_sends_anonymous_users_to_login(self, client):
        response = client.get("/attempts/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def test_it_lists_newest_first(self, operator):
        add("old", minutes_ago=10)
        add("new", minutes_ago=1)
        add("middle", minutes_ago=5)

        response = operator.get("/attempts/")

        assert response.status_code == 200
        assert shown(response) == ["new", "middle", "old"]
        assert response["Vary"] and "HX-Request" in response["Vary"]

    def test_it_filters_by_several_types_and_statuses(self, operator):
        add("a", "error", "LOCK_DOOR")
        add("b", "success", "LOCK_DOOR")
        add("c", "error", "UNLOCK_DOOR")
        add("d", "error", "SET_HEAT")
        add("e", "pending", "UNLOCK_DOOR")

        response = operator.get(
            "/attempts/?action_type=LOCK_DOOR&action_type=UNLOCK_DOOR&status=error&status=pending"
        )

        assert sorted(shown(response)) == ["a", "c", "e"]

    def test_a_type_recorded_but_not_documented_is_a_choice(self, operator):
        add("a", action_type="SET_HEAT_COOL")

        response = operator.get("/attempts/")

        choices = dict(response.context["form"].fields["action_type"].choices)
        assert "SET_HEAT_COOL" in choices and "LOCK_DOOR" in choices
        assert b'value="SET_HEAT_COOL"' in response.content

    def test_q_matches_an_exact_id_before_a_prefix(self, operator):
        add("action_attempt1")
        add("action_attempt10")
        add("other")

        assert shown(operator.get("/attempts/?q=action_attempt1")) == ["action_attempt1"]
        assert sorted(shown(operator.get("/attempts/?q=action_att"))) == [
            "action_attempt1",
            "action_attempt10",
        ]
        assert shown(operator.get("/attempts/?q=+other+")) == ["other"]
        # Any part of an id from 3 characters on; shorter, only its beginning.
        assert shown(operator.get("/attempts/?q=ther")) == ["other"]
        assert shown(operator.get("/attempts/?q=th")) == []

    @pytest.mark.parametrize("broad_prefix", [2, 1000])
    def test_a_broad_prefix_finds_the_same_rows(self, operator, monkeypatch, broad_prefix):
        monkeypatch.setattr(filters, "BROAD_PREFIX", broad_prefix)
        for i in range(5):
            add(f"ab_{i}", minutes_ago=i)
        add("abc")
        add("b%_1")

        assert shown(operator.get("/attempts/?q=ab_")) == [f"ab_{i}" for i in range(5)]
        assert shown(operator.get("/attempts/?q=ab_&after=" + Cursor(NOW, 10**9).encode())) == [
            f"ab_{i}" for i in range(5)
        ]
        assert shown(operator.get("/attempts/?q=b%25")) == ["b%_1"]
        assert shown(operator.get("/attempts/?q=a%25")) == []

    def test_it_filters_by_time_range(self, operator):
        add("hour_ago", minutes_ago=60 * 2)
        add("day_ago", minutes_ago=60 * 30)
        add("now")

        assert shown(operator.get("/attempts/?last=1h")) == ["now"]
        assert shown(operator.get("/attempts/?last=24h")) == ["now", "hour_ago"]
        since = (NOW - timedelta(hours=40)).strftime("%Y-%m-%dT%H:%M")
        until = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        assert shown(operator.get(f"/attempts/?since={since}&until={until}")) == [
            "hour_ago",
            "day_ago",
        ]

    def test_it_rejects_bad_filters_with_a_reason(self, operator):
        for query in ["status=lost", "after=yesterday", "since=soon", "last=forever"]:
            response = operator.get(f"/attempts/?{query}")
            assert response.status_code == 400, query
            assert b"errorlist" in response.content

        response = operator.get("/attempts/?since=2026-01-02T00:00&until=2026-01-01T00:00")
        assert response.status_code == 400
        assert b"ends before it starts" in response.content

    def test_it_pages_with_a_cursor(self, operator):
        for i in range(PAGE_SIZE * 2 + 5):
            add(f"aa{i:03}", minutes_ago=i)

        first = operator.get("/attempts/")
        older = first.context["page"].older
        second = operator.get(f"/attempts/?after={older.encode()}")
        third = operator.get(f"/attempts/?after={second.context['page'].older.encode()}")
        back = operator.get(f"/attempts/?before={third.context['page'].newer.encode()}")

        assert shown(first) == [f"aa{i:03}" for i in range(PAGE_SIZE)]
        assert shown(second) == [f"aa{i:03}" for i in range(PAGE_SIZE, 2 * PAGE_SIZE)]
        assert shown(third) == [f"aa{i:03}" for i in range(2 * PAGE_SIZE, 2 * PAGE_SIZE + 5)]
        assert third.context["page"].older is None
        assert shown(back) == shown(second)
        assert f'href="?after={older.encode()}"'.encode() in first.content

    def test_the_cursor_breaks_ties_on_the_same_first_seen_at(self, operator):
        for i in range(PAGE_SIZE + 3):
            add(f"tie{i:03}")

        first = operator.get("/attempts/")
        second = operator.get(f"/attempts/?after={first.context['page'].older.encode()}")

        assert len(set(shown(first)) | set(shown(second))) == PAGE_SIZE + 3

    def test_pages_of_several_types_and_statuses_merge_in_order(self, operator):
        types, statuses = ["LOCK_DOOR", "UNLOCK_DOOR", "SET_HEAT"], ["pending", "success", "error"]
        for i in range(150):
            add(f"aa{i:03}", statuses[i % 3], types[i % 7 % 3], minutes_ago=i // 2)
        query = "action_type=LOCK_DOOR&action_type=UNLOCK_DOOR&status=error&status=pending"
        expected = [
            a.action_attempt_id
            for a in Attempt.objects.filter(
                action_type__in=["LOCK_DOOR", "UNLOCK_DOOR"], status__in=["error", "pending"]
            ).order_by("-first_seen_at", "-id")
        ]
        pages, after = [], ""
        while True:
            response = operator.get(f"/attempts/?{query}{after}")
            pages.append(shown(response))
            if not response.context["page"].older:
                break
            after = f"&after={response.context['page'].older.encode()}"
        newer = response.context["page"].newer.encode()
        back = operator.get(f"/attempts/?{query}&before={newer}")

        assert len(expected) > PAGE_SIZE
        assert sum(pages, []) == expected
        assert shown(back) == pages[-2]

    def test_a_view_uses_neither_offset_nor_a_count_once_counts_are_cached(self, operator):
        for i in range(PAGE_SIZE + 1):
            add(f"aa{i:03}", minutes_ago=i)
        operator.get("/attempts/?status=pending")

        with CaptureQueriesContext(connection) as queries:
            response = operator.get("/attempts/?status=pending")
            operator.get(
                f"/attempts/?status=pending&after={response.context['page'].older.encode()}"
            )

        sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
        assert "OFFSET" not in sql
        assert "COUNT(" not in sql
        assert "DISTINCT" not in sql

    def test_an_htmx_filter_change_answers_the_list_only(self, operator):
        add("a", "error")

        response = operator.get(
            "/attempts/?status=error", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results"
        )

        assert response.status_code == 200
        body = response.content.decode()
        assert body.startswith('<div id="results">')
        assert "<html" not in body and 'id="filters"' not in body
        assert "HX-Request" in response["Vary"]

    def test_a_row_shows_its_latest_state_on_the_next_view(self, operator):
        attempt = add("aa1", minutes_ago=10)
        first = operator.get("/attempts/").content.decode()
        stuck = operator.get("/attempts/?stuck_minutes=5").content.decode()
        Attempt.objects.filter(pk=attempt.pk).update(status="error", error={"type": "jammed"})
        stale_version = operator.get("/attempts/").content.decode()
        attempt.refresh_from_db()
        attempt.save()  # a real change bumps the version, as merge() does
        after = operator.get("/attempts/").content.decode()

        assert "badge pending" in first and "badge stuck" not in first
        assert "badge stuck" in stuck
        assert "badge pending" in stale_version  # rows are rendered once per version
        assert "badge error" in after and "jammed" in after

    def test_it_sends_the_page_compressed_to_a_browser_that_accepts_it(self, operator):
        for n in range(PAGE_SIZE):
            add(f"aa{n}", minutes_ago=n)

        plain = operator.get("/attempts/")
        compressed = operator.get("/attempts/", headers={"Accept-Encoding": "gzip"})

        assert compressed["Content-Encoding"] == "gzip"
        assert len(compressed.content) * 4 < len(plain.content)
        assert "Accept-Encoding" in compressed["Vary"]

    def test_it_links_the_csv_export_of_the_same_filters(self, operator):
        body = operator.get("/attempts/?status=error&q=aa&after=1_1").content.decode()

        assert 'href="/attempts/export.csv?status=error&amp;q=aa" download' in body

    def test_it_shows_counts_error_rate_and_stuck_attempts(self, operator):
        add("s1", "success")
        add("e1", "error", "UNLOCK_DOOR")
        add("e2", "error", "UNLOCK_DOOR")
        add("e3", "error")
        add("stuck", "pending", minutes_ago=30)
        add("young", "pending", minutes_ago=1)

        response = operator.get("/attempts/?stuck_minutes=20")

        stats = response.context["stats"]
        assert stats["total"] == 6
        assert stats["error_percent"] == 75.0
        assert stats["stuck"] == 1
        by_type = {row["action_type"]: row for row in stats["types"]}
        assert (by_type["LOCK_DOOR"]["success"], by_type["UNLOCK_DOOR"]["error"]) == (1, 2)
        body = response.content.decode()
        assert "75.0%" in body
        assert body.count('class="badge stuck"') == 1
        assert '<rect class="seg-error"' in body

    def test_counts_are_computed_once_per_interval_for_every_viewer(self, operator):
        add("a", "error")
        operator.get("/attempts/")
        add("b", "error")

        assert operator.get("/attempts/").context["stats"]["total"] == 1
        assert operator.get("/attempts/?status=error").context["stats"]["total"] == 2

    def test_while_one_process_recomputes_stale_counts_the_others_serve_them(self, operator):
        add("a", "error")
        form = operator.get("/attempts/").context["form"]
        key = stats_key(form.filters(), form.threshold_minutes())
        stats = cache.get(key)
        cache.set(key, {**stats, "computed_at": stats["computed_at"] - timedelta(hours=1)})
        add("b", "error")
        assert cache.add(f"{key}:lock", 1, 30)  # another process is recomputing

        assert operator.get("/attempts/").context["stats"]["total"] == 1
        cache.delete(f"{key}:lock")
        assert operator.get("/attempts/").context["stats"]["total"] == 2


@pytest.mark.django_db
class TestQueryPlan:
    """The list's queries walk an index in order: no sort, no scan of the whole table."""

    def plan(self, qs) -> str:
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                return " ".join(str(row[-1]) for row in cursor.fetchall())
            # An empty test table is cheapest to scan: ask whether the index can serve the order.
            for setting in ("seqscan", "bitmapscan", "sort"):
                cursor.execute(f"SET LOCAL enable_{setting} = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            return " ".join(row[0] for row in cursor.fetchall())

    @pytest.mark.parametrize(
        "filters,index",
        [
            ({}, "attempt_newest_idx"),
            ({"status": ["error"]}, "attempt_status_newest_idx"),
            ({"action_type": ["LOCK_DOOR"], "status": ["error"]}, "attempt_type_status_newest_idx"),
            ({"error_type": ["device_offline"]}, "attempt_errtype_newest_idx"),
        ],
    )
    def test_pages_use_their_index_in_order(self, filters, index):
        cursor = Cursor(NOW, 1000)
        qs = filtered_attempts(filters)
        after = qs.filter(first_seen_at__lte=cursor.at).filter(
            Q(first_seen_at__lt=cursor.at) | Q(id__lt=cursor.pk)
        )[:51]

        for query in (qs[:51], after):
            plan = self.plan(query)
            if connection.vendor == "sqlite":
                assert index in plan, plan
            else:  # PostgreSQL's planner, without statistics, may take another index in order
                assert "_newest_idx" in plan, plan
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
