import subprocess
import sys
import tempfile
from pathlib import Path

from testing.servers import BASE_DIR


def test_migrate_installs_one_rule_of_each_kind(settings):
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{Path(tmp) / 'db.sqlite3'}", "SECRET_KEY": "x"}
        run = [sys.executable, "manage.py"]
        subprocess.run([*run, "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
        listed = subprocess.run(
            [
                *run,
                "shell",
                "-v0",
                "-c",
                "from alerts.models import Rule\n"
                "for r in Rule.objects.order_by('kind'):"
                " print(r.kind, r.enabled, repr(r.action_type), r.threshold, r.limit())",
            ],
            cwd=BASE_DIR,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    assert listed == [
        "error_rate True '' None 25.0",
        "error_type False '' None 1",
        "seam_unreachable True '' None 1",
        "stuck True '' None 1",
        "webhooks_missed True '' None 1",
    ]
