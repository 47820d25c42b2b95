import email
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from email.policy import default as email_policy

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from alerts import evaluation
from alerts.evaluation import evaluate, exclusive
from alerts.models import Incident, Notice
from attempts import rollups
from attempts.models import Attempt, Status
from fakeseam import free_port
from testing.receivers import JsonReceiver, SmtpReceiver
from testing.servers import BASE_DIR, test_database_url


def ended(action_type: str, status: str, n: int, minutes_ago: float = 1) -> None:
    """n attempts that ended minutes ago, counted in the rollups as merge() would count them."""
    now = timezone.now()
    attempts = Attempt.objects.bulk_create(
        Attempt(
            action_attempt_id=f"aa_{uuid.uuid4().hex}",
            action_type=action_type,
            status=status,
            first_seen_at=now - timedelta(minutes=minutes_ago + 1),
            ended_at=now - timedelta(minutes=minutes_ago),
            error={"type": "lock_jammed", "message": "jammed"} if status == Status.ERROR else None,
            error_type="lock_jammed" if status == Status.ERROR else "",
        )
        for _ in range(n)
    )
    rollups.count(attempts)


def mail_text(message: str) -> str:
    parsed = email.message_from_string(message, policy=email_policy)
    body = parsed.get_body(("plain", "html"))
    return f"{parsed['Subject']}\n{body.get_content() if body else ''}"


@pytest.mark.django_db
def test_it_notifies_each_destination_once_and_resolves_once(settings):
    with JsonReceiver() as hook, SmtpReceiver() as smtp:
        settings.ALERT_URLS = [hook.apprise_url, smtp.apprise_url]
        ended("LOCK_DOOR", Status.SUCCESS, 7)
        ended("LOCK_DOOR", Status.ERROR, 3)
        ended("UNLOCK_DOOR", Status.ERROR, 9)  # every one in error, but fewer than 10 ended

        call_command("check_alerts")
        assert len(hook.received) == 1
        assert "LOCK_DOOR" in hook.received[0]["title"]
        assert "3 of 10 LOCK_DOOR attempts" in hook.received[0]["message"]
        assert "threshold 25%" in hook.received[0]["message"]
        assert "UNLOCK_DOOR" not in hook.received[0]["message"]
        assert len(smtp.messages) == 1
        assert "LOCK_DOOR" in mail_text(smtp.messages[0])

        call_command("check_alerts")
        call_command("check_alerts")
        assert len(hook.received) == 1 and len(smtp.messages) == 1
        assert Incident.objects.get().figure == 30.0

        ended("LOCK_DOOR", Status.SUCCESS, 10)  # 3 of 20: 15 %
        call_command("check_alerts")
        assert len(hook.received) == 2 and len(smtp.messages) == 2
        assert hook.received[1]["title"].startswith("[RESOLVED]")
        assert "LOCK_DOOR" in hook.received[1]["title"]
        assert "LOCK_DOOR" in mail_text(smtp.messages[1])

        call_command("check_alerts")
        assert len(hook.received) == 2 and len(smtp.messages) == 2
        assert Incident.objects.get().resolved_at is not None


@pytest.mark.django_db
def test_it_follows_alert_error_rate(settings):
    with JsonReceiver() as hook:
        settings.ALERT_URLS = [hook.apprise_url]
        settings.ALERT_ERROR_RATE = 40
        ended("LOCK_DOOR", Status.SUCCESS, 7)
        ended("LOCK_DOOR", Status.ERROR, 3)
        call_command("check_alerts")
        assert hook.received == []
        settings.ALERT_ERROR_RATE = 30
        call_command("check_alerts")
        assert len(hook.received) == 1


@pytest.mark.django_db
def test_it_ignores_attempts_that_ended_before_the_window(settings):
    ended("LOCK_DOOR", Status.ERROR, 20, minutes_ago=16)
    evaluate()
    assert not Incident.objects.exists()


@pytest.mark.django_db
def test_a_destination_that_refused_gets_its_notice_once_it_is_back(settings, caplog):
    port = free_port()
    settings.ALERT_URLS = [f"json://127.0.0.1:{port}/hook"]
    ended("LOCK_DOOR", Status.ERROR, 10)

    outcome = evaluate()
    assert (outcome.opened, outcome.sent, outcome.failed) == (1, 0, 1)
    notice = Notice.objects.get()
    assert (notice.state, notice.tries) == (Notice.State.PENDING, 1)
    assert "outcome=failed" in caplog.text

    with JsonReceiver(port=port) as hook:
        assert evaluate().sent == 1
        assert len(hook.received) == 1 and "LOCK_DOOR" in hook.received[0]["title"]
        evaluate()
        assert len(hook.received) == 1
    assert Notice.objects.get().state == Notice.State.SENT


@pytest.mark.django_db
def test_it_gives_up_after_a_bounded_number_of_tries(settings, monkeypatch, caplog):
    monkeypatch.setattr(evaluation, "NOTICE_TRIES", 2)
    settings.ALERT_URLS = [f"json://127.0.0.1:{free_port()}/hook"]
    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    with caplog.at_level(logging.ERROR, logger="alerts.evaluation"):
        assert evaluate().gave_up == 1
    assert Notice.objects.get().state == Notice.State.GAVE_UP
    assert "outcome=gave_up" in caplog.text
    assert evaluate().failed == 0  # never tried again


@pytest.mark.django_db
def test_a_resolution_waits_behind_its_firing_notice(settings):
    port = free_port()
    settings.ALERT_URLS = [f"json://127.0.0.1:{port}/hook"]
    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    ended("LOCK_DOOR", Status.SUCCESS, 90)
    assert evaluate().resolved == 1
    with JsonReceiver(port=port) as hook:
        evaluate()
    assert [m["title"].split("]")[0] for m in hook.received] == ["[FIRING", "[RESOLVED"]


@pytest.mark.django_db(transaction=True)
def test_an_evaluation_skips_while_another_runs(settings):
    with JsonReceiver() as hook:
        settings.ALERT_URLS = [hook.apprise_url]
        ended("LOCK_DOOR", Status.ERROR, 10)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with exclusive() as got:
                assert got
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        try:
            assert evaluate().skipped
            assert hook.received == []
        finally:
            release.set()
            holder.join()
        assert evaluate().sent == 1


@pytest.mark.django_db(transaction=True)
def test_threads_of_one_process_exclude_each_other():
    threads, rounds = 4, 25
    start = threading.Barrier(threads)
    guard = threading.Lock()
    inside, most, won = 0, 0, 0

    def contend() -> None:
        nonlocal inside, most, won
        try:
            start.wait(10)
            for _ in range(rounds):
                with exclusive() as got:
                    if not got:
                        continue
                    with guard:
                        inside += 1
                        most, won = max(most, inside), won + 1
                    time.sleep(0.001)
                    with guard:
                        inside -= 1
        finally:
            connection.close()

    workers = [threading.Thread(target=contend) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert most == 1
    assert 0 < won < threads * rounds
    # Released: the next evaluation runs.
    with exclusive() as got:
        assert got


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_started_together_send_each_notice_once(settings):
    # The receiver takes a second to answer, so the first evaluation still holds the lock when
    # the second gets to it.
    with JsonReceiver(delay=1.0) as hook, SmtpReceiver() as smtp:
        ended("LOCK_DOOR", Status.ERROR, 10)
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SECRET_KEY": settings.SECRET_KEY,
            "ALERT_URLS": f"{hook.apprise_url},{smtp.apprise_url}",
        }
        command = [sys.executable, "manage.py", "check_alerts"]
        runs = [
            subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=60)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert len(hook.received) == 1, outputs
        assert len(smtp.messages) == 1
        assert Incident.objects.count() == 1
        assert Notice.objects.filter(state=Notice.State.SENT).count() == 2
        first, second = sorted(outputs, key=lambda out: "sent=2" not in out)
        assert "opened=1" in first and "sent=2" in first
        assert "skipped" in second or ("opened=0" in second and "sent=0" in second), outputs
        # A later evaluation finds nothing more to send.
        settings.ALERT_URLS = [hook.apprise_url, smtp.apprise_url]
        evaluate()
        assert len(hook.received) == 1 and len(smtp.messages) == 1


@pytest.mark.django_db
def test_no_secret_appears_in_notices_logs_or_pages(settings, caplog, admin_client):
    token = "s3cr3t-t0ken-value"
    with JsonReceiver(user="ops", password=token) as hook:
        settings.ALERT_URLS = [hook.apprise_url, f"json://ops:{token}@127.0.0.1:{free_port()}/"]
        ended("LOCK_DOOR", Status.ERROR, 10)
        with caplog.at_level(logging.DEBUG):
            evaluate()
            pages = [
                admin_client.get(url).content.decode()
                for url in ("/alerts/", "/attempts/", "/admin/alerts/notice/")
            ]
    assert len(hook.received) == 1
    assert hook.authorization[0].startswith("Basic ")  # the credentials did reach it
    assert token not in str(hook.received)
    assert token not in caplog.text
    assert "outcome=failed" in caplog.text
    for page in pages:
        assert token not in page
    assert all(token not in n.label for n in Notice.objects.all())


@pytest.mark.django_db
def test_a_notice_links_to_the_filtered_list(settings):
    with JsonReceiver() as hook:
        settings.ALERT_URLS = [hook.apprise_url]
        settings.DASHBOARD_URL = "https://ops.example.com"
        ended("LOCK_DOOR", Status.ERROR, 10)
        evaluate()
    message = hook.received[0]["message"]
    assert "https://ops.example.com/attempts/?action_type=LOCK_DOOR&status=error&last=1h" in message
    assert "Rule: Error rate" in message and "Since: " in message


@pytest.mark.django_db(transaction=True)
def test_every_keeps_evaluating(settings):
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "PYTHONUNBUFFERED": "",  # as under cron or a service: each line must be flushed
    }
    run = subprocess.Popen(
        [sys.executable, "manage.py", "check_alerts", "--every", "1"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [run.stdout.readline() for _ in range(2)]
    finally:
        run.terminate()
        run.wait(10)
    assert all(line.startswith("check_alerts outcome=ok") for line in lines), lines
