#!/usr/bin/python3
"""sd_notify on a NOTIFY_SOCKET of the test's own (jack-testing.md §7): READY=1 only once the client
is active and connected (not while earshotd waits for a server), STATUS= lines, WATCHDOG=1 while the
RT cycle advances (and while it waits for JACK), none while the cycle is stalled, STOPPING=1 at
SIGTERM; the sender is earshotd's pid (SCM_CREDENTIALS)."""

import os
import signal
import time

from harness import (NotifyListener, Rig, base_config, check, main_wrapper, wait_for)


def run(earshotd):
    with Rig(earshotd) as rig:
        sock = os.path.join(rig.tmp, "notify.sock")
        n = NotifyListener(sock)
        try:
            path = rig.write_config(base_config(rig.server))
            # Started before any JACK server exists.
            d = rig.start_daemon(path, extra_env={"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "400000"})
            time.sleep(1.5)
            check(d.alive(), "earshotd waits for a JACK server instead of exiting")
            check(not n.seen("READY=1"), "no READY=1 while there is no JACK server")
            check(len(n.seen("WATCHDOG=1")) >= 4, f"WATCHDOG=1 while waiting ({len(n.seen('WATCHDOG=1'))} in 1.5 s)")
            check(any("waiting for JACK server" in m[2] for m in n.seen("STATUS=")), "STATUS= says it is waiting")

            t_jack = time.monotonic() - n.t0
            rig.start_jack()
            wait_for(lambda: n.seen("READY=1"), 10, "READY=1")
            ready = n.seen("READY=1")[0]
            check(ready[0] >= t_jack, f"READY=1 came after the server started ({ready[0] - t_jack:.2f} s later)")
            me = d.wait_connected(timeout=2)["jack"]["client"]
            check(f"{me}:drums_L" in rig.ports(me + ":"), "and the client is active with its ports")
            check(ready[1] == d.p.pid, f"the sender is earshotd (pid {ready[1]})")
            check("STATUS=" in ready[2] and "musicians" in ready[2], f"READY carries a STATUS line: {ready[2]!r}")

            w0 = len(n.seen("WATCHDOG=1"))
            time.sleep(1.0)
            w1 = len(n.seen("WATCHDOG=1"))
            check(w1 - w0 >= 3, f"WATCHDOG=1 while the RT cycle advances ({w1 - w0} in 1 s, interval 0.4 s)")

            # Freeze the server: the process cycle stops, so must the pings.
            rig.jackd.p.send_signal(signal.SIGSTOP)
            time.sleep(0.5)  # let an in-flight ping pass
            s0 = len(n.seen("WATCHDOG=1"))
            time.sleep(1.5)
            s1 = len(n.seen("WATCHDOG=1"))
            rig.jackd.p.send_signal(signal.SIGCONT)
            check(s1 == s0, f"no WATCHDOG=1 while the cycle is stalled ({s1 - s0} in 1.5 s)")
            wait_for(lambda: len(n.seen("WATCHDOG=1")) > s1, 5, "pings to resume")
            check(True, "pings resume when the cycle advances again")
            check("has not advanced" in d.log_text(), "the stall is logged")

            rc = d.stop()
            check(rc == 0, "SIGTERM: exit 0")
            wait_for(lambda: n.seen("STOPPING=1"), 2, "STOPPING=1")
            check(True, "STOPPING=1 at shutdown")
        finally:
            n.close()


if __name__ == "__main__":
    main_wrapper(run)
