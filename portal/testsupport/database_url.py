"""Print the PostgreSQL URL `make test` should use, or nothing if none answers.

Run as `python -m portal.testsupport.database_url`.
"""

import socket

LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/portal"


def local_postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


if __name__ == "__main__":
    print(LOCAL_POSTGRES_URL if local_postgres_answers() else "")
