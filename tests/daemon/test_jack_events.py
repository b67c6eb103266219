#!/usr/bin/python3
"""JACK's events reach earshotd and are handled (issue 4): a matching port that goes and comes back
within a few milliseconds (less than a control-loop tick) is connected again; freewheel computes
audio but counts no dose; xruns (forced by a client that stalls the graph) are counted in status.json and logged; a
period change (jack_bufsize) on the running server keeps the audio sample-exact and the latency as
reported — against a private jackd (dummy backend)."""

import os
import subprocess
import time

import jack
import numpy as np

from harness import (FS, Rig, base_config, check, main_wrapper, sine, wait_for)

AMP = 0.1


def run(earshotd):
    with Rig(earshotd) as rig:
        rig.start_jack()
        d = rig.start_daemon(rig.write_config(base_config(rig.server, startup_ms=100)))
        me = d.wait_connected()["jack"]["client"]
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 10, "tone connected")

        # --- a port that disappears and reappears between two ticks ------------------------------
        for i in range(5):
            old = src.outs[0]
            old.unregister()
            src.outs[0] = src.client.outports.register("out")
            wait_for(lambda: rig.connections(f"{me}:tone") == [src.port("out")], 3,
                     f"tone reconnected to the re-registered src:out ({i + 1})")
        check(True, "a port re-registered within a tick is connected again, 5 times out of 5")

        # --- freewheel: computed, not heard, no dose ---------------------------------------------
        wait_for(lambda: (d.musician("drums").get("dose") or {}).get("seconds", 0) >= 3, 20, "3 s of dose")
        s0 = d.status()
        a, samples0, t = d.musician("drums", s0)["dose"]["seconds"], s0["engine"]["samples"], time.monotonic()
        rig.freewheel(True)
        wait_for(lambda: d.status()["jack"]["freewheel"], 3, "status.json to show freewheel")
        time.sleep(1.0)
        rig.freewheel(False)
        wait_for(lambda: not d.status()["jack"]["freewheel"], 3, "freewheel off")
        time.sleep(1.2)  # the open second reaches the dose
        s1 = d.status()
        b, samples1, wall = d.musician("drums", s1)["dose"]["seconds"], s1["engine"]["samples"], time.monotonic() - t
        computed = (samples1 - samples0) / FS
        check(computed > wall + 5, f"freewheel computed {computed:.0f} s of audio in {wall:.1f} s")
        check(b - a <= wall + 1.5, f"the dose counted {b - a:.0f} s: only what was heard in real time ({wall:.1f} s)")
        check(b > a, "and it counts again after freewheel")
        check("freewheel on: audio computed but not heard, no dose counted" in d.log_text(), "the log says so")

        # --- xruns: a client that stalls the graph three times -----------------------------------
        x0 = d.status()["jack"]["xruns"]
        stall = {"n": 0}
        staller = jack.Client(f"stall-{rig.server}", no_start_server=True, servername=rig.server)
        staller.outports.register("o")

        def stalling(n):
            if stall["n"] > 0:
                stall["n"] -= 1
                time.sleep(0.05)  # 50 ms in a 5.3 ms period
        staller.set_process_callback(stalling)
        staller.activate()
        try:
            for _ in range(3):
                stall["n"] = 1
                time.sleep(0.4)
            x1 = wait_for(lambda: d.status()["jack"]["xruns"] >= x0 + 3 and d.status()["jack"]["xruns"], 5,
                          "the xruns to be counted")
        finally:
            staller.deactivate()
            staller.close()
        check(True, f"status.json counts the xruns ({x0} -> {x1})")
        check("xrun: " in d.log_text(), "and the log reports them")

        # --- period changes on the running server ------------------------------------------------
        env = dict(os.environ, JACK_DEFAULT_SERVER=rig.server, JACK_NO_START_SERVER="1")
        for period in (1024, 64):
            subprocess.run(["jack_bufsize", str(period)], env=env, capture_output=True, timeout=10)
            wait_for(lambda: d.status()["jack"]["period"] == period, 5, f"period {period} in status.json")
            check(f"JACK period is now {period} frames" in d.log_text(), f"period {period}: logged")
            rig.freewheel(True)
            sink.record(0.3)
            t0, y = sink.record(1.0)
            rig.freewheel(False)
            n = np.arange(y.shape[1]) + t0
            expect = np.sqrt(0.5) * AMP * np.sin(2 * np.pi * 1000.0 * (n - 48) / FS)
            err = float(np.max(np.abs(y[0] - expect)))
            check(err < 1e-5, f"period {period}: drums_L is the input delayed by exactly 48 frames (max error {err:.1e})")
            check(rig.latency_range(f"{me}:drums_L") == (48, 48), f"period {period}: the reported latency is still 48")
        check(d.alive() and d.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
