"""
haclient.py - steady HTTPS traffic to one address for the HA test, run inside
the client's namespace: python3 haclient.py ADDR NAME CAFILE STOPFILE.

One connection after another (20 ms apart) until STOPFILE exists: TCP to
ADDR:443, TLS with NAME as SNI offering the last session ticket it got (from
whichever gateway), one GET with Connection: close, the body read whole. Each
connection is one JSON line on stdout: start and end (CLOCK_MONOTONIC, which
the test shares), ok or the error, whether TLS resumed, and which gateway
forwarded it (the back end's answer names its peer).
"""
import json
import os
import socket
import ssl
import sys
import time


def main():
    addr, name, cafile, stopfile = sys.argv[1:5]
    ctx = ssl.create_default_context(cafile=cafile)
    session = None
    while not os.path.exists(stopfile):
        rec = {"start": time.monotonic(), "ok": False, "resumed": False, "via": None, "error": None}
        s = raw = None
        try:
            raw = socket.create_connection((addr, 443), timeout=2)
            raw.settimeout(2)
            s = ctx.wrap_socket(raw, server_hostname=name, session=session)
            rec["resumed"] = s.session_reused
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % name.encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise ValueError("answer %r" % head[:40])
            rec["via"] = json.loads(body)["peer"]
            rec["ok"] = True
            session = s.session
        except (OSError, ValueError, ssl.SSLError) as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            for sock in (s, raw):
                if sock is not None:
                    sock.close()
        rec["end"] = time.monotonic()
        print(json.dumps(rec), flush=True)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
