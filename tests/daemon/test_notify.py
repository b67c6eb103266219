#!/usr/bin/python3
"""sd_notify on a NOTIFY_SOCKET of the test's own (jack-testing.md §7): READY=1 only once the client
is active and connected (not while earshotd waits for a server, not after a SIGHUP while it waits),
STATUS= lines, RELOADING=1 then READY=1 around a reload while connected (also one that re-joins JACK
under a new client name), no READY=1 again when it reconnects after the server came back,
WATCHDOG=1 while the RT cycle advances (and while it waits for JACK), none while the cycle is
stalled, STOPPING=1 at SIGTERM; the sender is earshotd's pid (SCM_CREDENTIALS)."""

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

            # A reload before any server exists: applied, but systemd must not hear READY=1 (the
            # service would count as started while nothing plays) nor RELOADING=1 (not running yet).
            d.signal(signal.SIGHUP)
            wait_for(lambda: "config reloaded" in d.log_text(), 5, "the reload while waiting")
            time.sleep(0.3)
            check(not n.seen("READY=1") and not n.seen("RELOADING=1"),
                  "SIGHUP while waiting for JACK: no READY=1, no RELOADING=1")
            check(d.status()["jack"]["state"] == "waiting", "and earshotd still waits")

            t_jack = time.monotonic() - n.t0
            rig.start_jack()
            wait_for(lambda: n.seen("READY=1"), 10, "READY=1")
            ready = n.seen("READY=1")[0]
            check(ready[0] >= t_jack, f"READY=1 came after the server started ({ready[0] - t_jack:.2f} s later)")
            me = d.wait_connected(timeout=2)["jack"]["client"]
            check(f"{me}:drums_L" in rig.ports(me + ":"), "and the client is active with its ports")
            check(ready[1] == d.p.pid, f"the sender is earshotd (pid {ready[1]})")
            check("STATUS=" in ready[2] and "musicians" in ready[2], f"READY carries a STATUS line: {ready[2]!r}")
            time.sleep(0.3)
            check(len(n.seen("READY=1")) == 1, "exactly one READY=1 for the connection")

            # A reload while connected: RELOADING=1, then READY=1 once it is applied.
            r0 = d.log_text().count("config reloaded")
            d.signal(signal.SIGHUP)
            wait_for(lambda: len(n.seen("READY=1")) == 2, 5, "READY=1 after the reload")
            rl, rd = n.seen("RELOADING=1"), n.seen("READY=1")
            check(len(rl) == 1 and rl[0][0] <= rd[1][0] and d.log_text().count("config reloaded") > r0,
                  "SIGHUP while connected: RELOADING=1, then READY=1")

            # A reload that re-joins JACK under a new client name: READY=1 only once joined again.
            new_name = f"renamed-{rig.server}"
            rig.write_config(base_config(rig.server, client=new_name))
            d.signal(signal.SIGHUP)
            wait_for(lambda: len(n.seen("READY=1")) == 3, 10, "READY=1 after the rename")
            wait_for(lambda: d.wait_connected(timeout=2)["jack"]["client"] == new_name, 5, "status.json with the new name")
            check(len(n.seen("RELOADING=1")) == 2 and n.seen("RELOADING=1")[1][0] <= n.seen("READY=1")[2][0],
                  f"renamed to {new_name}: RELOADING=1, then READY=1 after joining again")
            me = new_name

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

            # The server goes and comes back: earshotd reconnects; for systemd it was up all along.
            # (The test's own client leaves first: python-jack can crash when its server vanishes.)
            if rig.ctl is not None:
                rig.ctl.close()
                rig.ctl = None
            rig.jackd.kill(signal.SIGKILL)
            wait_for(lambda: (d.status() or {}).get("jack", {}).get("state") == "waiting", 5, "the server gone")
            rig.start_jack()
            d.wait_connected(timeout=15)
            time.sleep(0.3)
            check(len(n.seen("READY=1")) == 3, "no READY=1 for a reconnect (STATUS= only)")

            rc = d.stop()
            check(rc == 0, "SIGTERM: exit 0")
            wait_for(lambda: n.seen("STOPPING=1"), 2, "STOPPING=1")
            check(True, "STOPPING=1 at shutdown")
        finally:
            n.close()


if __name__ == "__main__":
    main_wrapper(run)
