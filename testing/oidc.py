"""An OpenID provider on loopback (npm's oidc-provider, testing/node/oidc-provider.mjs), for
signing in to the dashboard through it. `npm ci --prefix testing/node` installs it; `make test`
does that for you."""

import json
import subprocess
import tempfile
from pathlib import Path

import httpx

from fakeseam import free_port
from fakeseam.process import terminate, wait_listening

NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENT_ID = "dashboard"
CLIENT_SECRET = "test-only-client-secret-0123456789abcdef"


class OidcProvider:
    """`with OidcProvider(dashboard_url, {"olivia": {"groups": ["ops"]}}) as idp:` then
    OIDC_ISSUER=idp.issuer. Any password signs an account in; consent is given."""

    def __init__(self, dashboard_url: str, accounts: dict[str, dict]) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = {
            "port": self.port,
            "issuer": self.issuer,
            "client": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{dashboard_url}/oidc/callback/"],
            },
            "accounts": {
                login: {"email": f"{login}@example.test", **claims}
                for login, claims in accounts.items()
            },
        }
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="oidc-provider-", suffix=".log")
        self.config_file = tempfile.NamedTemporaryFile("w", suffix=".json")

    def env(self, **more: str) -> dict[str, str]:
        """The dashboard's settings for this provider."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            **more,
        }

    def id_tokens(self, mode: str) -> None:
        """From now on the token endpoint answers with ID tokens re-signed by another key
        ("other_key"), for another audience ("other_audience"), already expired ("expired"),
        or as issued ("")."""
        response = httpx.post(f"{self.issuer}/_test/id_token", json={"mode": mode}, timeout=5)
        response.raise_for_status()

    def start(self, timeout: float = 30) -> "OidcProvider":
        script = NODE_DIR / "oidc-provider.mjs"
        if not (NODE_DIR / "node_modules" / "oidc-provider").exists():
            raise RuntimeError(
                "oidc-provider is not installed: run `npm ci --prefix testing/node`."
            )
        json.dump(self.config, self.config_file)
        self.config_file.flush()
        self.process = subprocess.Popen(
            ["node", str(script), self.config_file.name],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_listening(self.process, self.port, "the OpenID provider", timeout)
        return self

    def stop(self) -> None:
        terminate(self.process, timeout=5)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def __enter__(self) -> "OidcProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
