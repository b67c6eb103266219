#!/usr/bin/python3
"""Process hygiene of earshotd (issue 4): SIGTERM, SIGINT and SIGHUP are blocked in every thread
(JACK's and RtMidi's included) and taken by the control loop only; SIGTERM while the JACK server is
frozen (SIGSTOP) still exits 0 within a few seconds, with the live mix saved and the open minute of
dose written as a CSV row; the server, once resumed, lets a new earshotd join under the same name."""

import glob
import os
import signal
import time

from harness import (Rig, base_config, check, main_wrapper, sine, wait_for)

AMP = 0.316
# Bits of SigBlk in /proc/<pid>/task/<tid>/status: signal n is bit n-1.
HANDLED = {"SIGHUP": signal.SIGHUP, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}

PAD = """controllers:
  - id: pad
    api: jack
    port: "pad-{server}:out"
    mappings:
      - {{ cc: 7, channel: 1, action: master, musician: drums }}
"""


def thread_masks(pid):
    out = []
    for t in sorted(glob.glob(f"/proc/{pid}/task/*")):
        try:
            name = open(t + "/comm").read().strip()
            blk = [l for l in open(t + "/status").read().splitlines() if l.startswith("SigBlk:")][0]
        except OSError:
            continue  # a thread that just ended
        out.append((t.rsplit("/", 1)[1], name, int(blk.split()[1], 16)))
    return out


def run(earshotd):
    with Rig(earshotd) as rig:
        rig.start_jack()
        path = rig.write_config(base_config(rig.server, startup_ms=100) + PAD.format(server=rig.server))
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 10, "tone connected")

        # --- signal masks -----------------------------------------------------------------------
        wait_for(lambda: len(thread_masks(d.p.pid)) >= 4, 5, "JACK's threads")
        masks = thread_masks(d.p.pid)
        for tid, name, blk in masks:
            missing = [n for n, s in HANDLED.items() if not blk & (1 << (s - 1))]
            check(not missing, f"thread {tid} ({name}) blocks SIGHUP, SIGINT and SIGTERM (missing: {missing})")
        check(len(masks) >= 4, f"{len(masks)} threads looked at (control, JACK process and notification, RtMidi)")
        n0 = d.log_text().count("config reloaded")
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.log_text().count("config reloaded") > n0, 5, "the reload")
        check(d.alive(), "SIGHUP still reaches the control loop (a reload, earshotd keeps running)")

        # --- SIGTERM with a frozen server -------------------------------------------------------
        r = d.request({"id": 1, "cmd": "set", "musician": "drums", "master_db": -4})
        check(r.get("ok") is True, f"a live move over the control socket ({r})")
        wait_for(lambda: (d.musician("drums").get("dose") or {}).get("seconds", 0) >= 4, 20, "4 s of dose")
        heard = d.musician("drums")["dose"]["seconds"]
        for p in rig.players:  # the test's clients would only stall with the server
            p.close()
        rig.players.clear()
        rig.jackd.p.send_signal(signal.SIGSTOP)
        try:
            time.sleep(0.3)
            t = time.monotonic()
            d.signal(signal.SIGTERM)
            try:
                rc = d.p.wait(8)
            except Exception:
                rc = None
            took = time.monotonic() - t
            check(rc == 0, f"SIGTERM with the JACK server frozen: exit status {rc} after {took:.2f} s")
            check(took < 4.0, f"it did not wait for the frozen server ({took:.2f} s, close timeout 2 s)")
        finally:
            rig.jackd.p.send_signal(signal.SIGCONT)
        log = d.log_text()
        check("did not answer" in log and "stopped" in log, "the log says the client was abandoned, then stopped")
        mix = open(os.path.join(d.state, "mix.json")).read()
        check('"live":-4' in mix.replace(" ", "") or '"live":-4.0' in mix.replace(" ", ""),
              "mix.json holds the live move")
        files = glob.glob(os.path.join(d.state, "exposure", "drums", "????-??-??.csv"))
        check(len(files) == 1, "drums have an exposure log for today")
        lines = open(files[0]).read().splitlines()
        head = lines[0].split(",")
        rows = [dict(zip(head, l.split(","))) for l in lines[1:] if l]
        dur = sum(float(x["duration_s"]) for x in rows)
        check(rows and dur >= heard, f"the open minute was written as a row ({len(rows)} row(s), {dur:.0f} s "
              f"for {heard} s heard)")
        journal = os.path.join(d.state, "exposure", "drums", "journal")
        check(not os.path.exists(journal) or os.path.getsize(journal) == 0, "and its journal is empty")
        check(not os.path.exists(os.path.join(d.runtime, "status.json")), "status.json is removed")

        # The resumed server lets go of the abandoned client: a new earshotd joins under the name.
        d2 = rig.start_daemon(path)
        st = d2.wait_connected(timeout=15)
        check(st["jack"]["client"] == me, f"a new earshotd joins the resumed server as '{me}'")
        check(d2.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
