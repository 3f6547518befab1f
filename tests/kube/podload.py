"""Steady load on a pod, from the client's namespace: ``podload.py URL STOP_FILE``.

Threads send GET requests, each on a new connection, until STOP_FILE exists,
then print one JSON line: how many requests were answered 200 with the whole
body (``ok``), never accepted (``refused``: the connection failed before the
request went out), or lost (``lost``: sent, then no answer, a reset, or an
answer other than 200), with the first few of those.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import urllib.parse

THREADS = 4


def main(url: str, stop_file: str) -> None:
    target = urllib.parse.urlsplit(url)
    counts = {"ok": 0, "refused": 0, "lost": 0}
    lost: list[str] = []
    lock = threading.Lock()

    def one() -> tuple[str, str]:
        connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        try:
            connection.connect()
        except OSError as exc:
            return "refused", repr(exc)
        try:
            connection.request("GET", target.path + ("?" + target.query if target.query else ""))
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return "lost", repr(exc)
        finally:
            connection.close()
        if response.status == 200 and body == b"slow\n":
            return "ok", ""
        return "lost", f"{response.status} {body[:80]!r}"

    def loop() -> None:
        while not os.path.exists(stop_file):
            outcome, detail = one()
            with lock:
                counts[outcome] += 1
                if outcome == "lost" and len(lost) < 5:
                    lost.append(detail)

    threads = [threading.Thread(target=loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({**counts, "examples": lost}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
