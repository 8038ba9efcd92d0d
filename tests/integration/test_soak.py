"""
The soak's short version (tests/soak/soak.py; `make soak` runs it for SOAK_MINUTES):
every kind of traffic at once for 9 s with 2 MiB bodies, SIGHUP every 2 s, a back end
killed and restarted every 3 s, one drained and enabled, a burst of 300 connections.
Every body is checked end to end; a failure not in flight on a killed server, a request
sent to the drained server, a kind that never completed, or a gateway that grew its RSS
or descriptors by more than 10 %, fails it. Under ASan (make test-asan) freed memory waits
in a 16 MiB quarantine and RSS says nothing of leaks: LeakSanitizer at exit does, so RSS
may grow by half there.
"""
import os
import subprocess
import sys
import unittest

from harness import require_binary

HERE = os.path.dirname(os.path.abspath(__file__))


class ShortSoak(unittest.TestCase):
    def test_mixed_traffic_with_reloads_and_kills_loses_nothing(self):
        require_binary(self)
        soak = os.path.join(HERE, "..", "soak", "soak.py")
        r = subprocess.run([sys.executable, soak, "--onegate", os.environ["ONEGATE_BIN"], "--minutes", "0.15",
                            "--big", "2", "--reload-s", "2", "--kill-s", "3", "--burst", "300",
                            "--rss-slack", "0.5" if "ASAN_OPTIONS" in os.environ else "0.10"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        out = r.stdout.decode(errors="replace")
        print(out)
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("defects: 0", out)


if __name__ == "__main__":
    unittest.main()
