"""A local stand-in for Google's OAuth2 endpoints (authorize, token, userinfo).

It speaks the same HTTP as Google for the authorization-code flow: /auth redirects
back with a code and the caller's state, /token trades the code for an access token,
/userinfo answers the OpenID Connect claims for that token.
"""

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from portal.settings import google_workspace_settings


@dataclass
class FakeGoogle:
    client_id: str = "portal-client-id"
    client_secret: str = "portal-client-secret"
    # The claims the next sign-in returns; tests change them.
    claims: dict = field(
        default_factory=lambda: {
            "sub": "110248495921238986420",
            "email": "new.person@zeromargin.example",
            "email_verified": True,
            "hd": "zeromargin.example",
            "name": "New Person",
        }
    )
    requests: list = field(default_factory=list)
    codes: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    base_url: str = ""

    def start(self) -> "FakeGoogle":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append(("GET", url.path, query, dict(self.headers)))
                if url.path == "/o/oauth2/auth":
                    if query.get("client_id") != fake.client_id:
                        return self._json(400, {"error": "invalid_client"})
                    code = secrets.token_urlsafe(8)
                    fake.codes[code] = dict(fake.claims)
                    back = urlencode({"state": query.get("state", ""), "code": code})
                    target = f"{query['redirect_uri']}?{back}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                    return None
                if url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if token not in fake.tokens:
                        return self._json(401, {"error": "invalid_token"})
                    return self._json(200, fake.tokens[token])
                return self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake.requests.append(("POST", self.path, form, dict(self.headers)))
                if self.path != "/token":
                    return self._json(404, {"error": "not_found"})
                if (form.get("client_id"), form.get("client_secret")) != (
                    fake.client_id,
                    fake.client_secret,
                ):
                    return self._json(401, {"error": "invalid_client"})
                claims = fake.codes.pop(form.get("code", ""), None)
                if claims is None or form.get("grant_type") != "authorization_code":
                    return self._json(400, {"error": "invalid_grant"})
                access_token = secrets.token_urlsafe(16)
                fake.tokens[access_token] = claims
                return self._json(
                    200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 3599}
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def settings(self) -> dict:
        return {
            "SSO_ENABLED": True,
            "SOCIAL_AUTH_GOOGLE_OAUTH2_KEY": self.client_id,
            "SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET": self.client_secret,
            # the domain restriction exactly as production settings build it
            **google_workspace_settings("zeromargin.example"),
            "GOOGLE_OAUTH2_AUTH_URL": f"{self.base_url}/o/oauth2/auth",
            "GOOGLE_OAUTH2_TOKEN_URL": f"{self.base_url}/token",
            "GOOGLE_OAUTH2_USERINFO_URL": f"{self.base_url}/userinfo",
        }
