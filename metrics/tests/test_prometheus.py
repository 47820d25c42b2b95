import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from fakeseam import free_port
from fakeseam.process import terminate, wait_listening
from testing.servers import BASE_DIR, Gunicorn, wait_until
from testing.webhooks import SECRET, bad_signature, deliver, seam_event, signed_headers

pytestmark = [pytest.mark.prometheus]

TOKEN = "prometheus-test-token"
DEPLOY = BASE_DIR / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True)


def test_the_sample_config_and_rules_are_clean():
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("prometheus.yml", "dashboard-alerts.yml"):
            shutil.copy(DEPLOY / name, tmp)
        (Path(tmp) / "seam-dashboard-token").write_text("a-token\n")
        config = promtool("check", "config", str(Path(tmp) / "prometheus.yml"))
        assert config.returncode == 0, config.stdout + config.stderr
        assert "SUCCESS: 6 rules found" in config.stdout
    rules = promtool("check", "rules", str(DEPLOY / "dashboard-alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def query(url: str, promql: str) -> dict[str, float]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    return {r["metric"].get("outcome", ""): float(r["value"][1]) for r in answer["data"]["result"]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
def test_prometheus_scrapes_the_deliveries_of_every_worker():
    env = {"METRICS_TOKEN": TOKEN, "SEAM_WEBHOOK_SECRET": SECRET}
    with Gunicorn(env=env, workers=2) as server, tempfile.TemporaryDirectory() as tmp:
        for i in range(6):
            assert deliver(server, seam_event(f"evt_{i}", action_attempt_id=f"aa_{i}")).json()[
                "recorded"
            ]
        for i in range(2):
            assert not deliver(server, seam_event(f"evt_{i}", action_attempt_id=f"aa_{i}")).json()[
                "recorded"
            ]
        for _ in range(3):
            body = b'{"event_id": "evt_x"}'
            assert deliver(server, body, bad_signature(signed_headers(body))).status_code == 401
        # Each scrape is answered by whichever worker accepts it: every one gives the sum.
        for _ in range(6):
            with httpx.Client() as fresh:
                text = fresh.get(
                    f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                ).text
            assert 'seam_dashboard_webhook_deliveries_total{outcome="recorded"} 6.0' in text

        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: dashboard\n"
            "    authorization:\n"
            f"      credentials: {TOKEN}\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{server.port}']\n"
        )
        port = free_port()
        log = (Path(tmp) / "prometheus.log").open("w")
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={Path(tmp) / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(prometheus, port, "prometheus", timeout=60)
            url = f"http://127.0.0.1:{port}"
            expected = {"recorded": 6.0, "duplicate": 2.0, "rejected": 3.0}
            promql = "sum by (outcome) (seam_dashboard_webhook_deliveries_total)"
            wait_until(
                lambda: query(url, promql) == expected,
                60,
                lambda: (
                    f"{expected} scraped (it answered {query(url, promql)}; prometheus logged "
                    f"{(Path(tmp) / 'prometheus.log').read_text()[-2000:]})"
                ),
            )
        finally:
            terminate(prometheus)
            log.close()
