#!/usr/bin/python3
"""The live mix survives a restart (issue 4): <state-dir>/mix.json is restored at start-up, ramped
from silence (recorded from before earshotd starts, so wall-clock timing cannot hide a missing
fade); where the config changed a value since it was saved, the config wins; a corrupt file is
reported and ignored (the config's mix is used); live moves over the control socket are saved at
most once a second, also during a continuous fader ride, and come back after SIGTERM and SIGKILL."""

import json
import os
import signal
import time

import numpy as np

from harness import (FS, Rig, base_config, check, db, envelope, main_wrapper, rms, sine, wait_for)

AMP = 0.1
FULL = AMP * np.sqrt(0.5) / np.sqrt(2)  # drums_L RMS at 0 dB send, centre pan


def send(db_, pan=0.0, mute=False):
    return {"gain_db": db_, "pan": pan, "mute": mute}


def run(earshotd):
    with Rig(earshotd) as rig:
        rig.start_jack()
        path = rig.write_config(base_config(rig.server, startup_ms=2000))
        state = os.path.join(rig.tmp, "state")
        os.makedirs(state)
        # A soundcheck saved by an earlier run: drums' master pulled to -10, the tone send to -3,
        # both moved away from the config's values (base).
        saved = {"version": 1, "musicians": {"drums": {
            "master": {"live": -10.0, "base": 0.0},
            "sends": {"tone": {"live": send(-3.0), "base": send(0.0)},
                      "kick": {"live": send(None), "base": send(None)}}}}}
        json.dump(saved, open(os.path.join(state, "mix.json"), "w"))

        # The band and the listener are there before earshotd starts; the sink records from its
        # first cycle, so the start of the fade is in the recording however slow the start-up is.
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"], record_now=True)
        t_start = time.monotonic()
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        _, y = sink.record(time.monotonic() - t_start + 0.3, keep=True)
        L = y[0]
        heard = np.nonzero(np.abs(L) > 0)[0]
        saved_peak = AMP * np.sqrt(0.5) * 10 ** (-13 / 20)  # drums_L peak at the saved mix
        check(len(heard) > 0 and heard[0] > 0, f"recorded from before earshotd started ({heard[0]} silent samples)")
        first = float(np.max(np.abs(L[heard[0]:heard[0] + FS // 10])))
        check(first < 0.25 * saved_peak,
              f"the restored mix fades in: the first 100 ms peak {db(first / saved_peak):.1f} dB below its level "
              f"(start-up ramp 2 s)")
        rig.freewheel(True)
        _, y = sink.record(4.0)
        rig.freewheel(False)
        env = envelope(y[0], 480)
        check(abs(db(env[-1] / FULL) + 13.0) < 0.02,
              f"drums play at the saved soundcheck: {db(env[-1] / FULL):+.2f} dB (master -10, send -3)")

        # The engineer edits the config's master (0 -> -2): the config wins for that value only.
        rig.write_config(base_config(rig.server, startup_ms=2000).replace(
            "  - id: drums\n", "  - id: drums\n").replace("    mix:\n      sends:\n        tone: { gain_db: 0 }\n  - id: bass",
                                                         "    mix:\n      master_db: -2\n      sends:\n        tone: { gain_db: 0 }\n  - id: bass", 1))
        d.signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in d.log_text(), 5, "the reload")
        rig.freewheel(True)
        sink.record(1.0)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 5.0) < 0.02,
              f"after the edit: {db(rms(y[0]) / FULL):+.2f} dB (config master -2 wins, saved send -3 stays)")
        check(d.stop() == 0, "SIGTERM: exit 0")
        st = json.load(open(os.path.join(state, "mix.json")))
        m = st["musicians"]["drums"]
        check(m["master"] == {"live": -2.0, "base": -2.0} and m["sends"]["tone"]["live"]["gain_db"] == -3.0,
              "mix.json holds the merged mix")

        # Restart with the same config: the same mix again.
        d = rig.start_daemon(path)
        d.wait_connected()
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        rig.freewheel(True)
        sink.record(3.0)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 5.0) < 0.02, "a restart restores it")
        check(d.stop() == 0, "SIGTERM: exit 0")

        # A corrupt mix.json: reported, ignored, the config's mix plays.
        open(os.path.join(state, "mix.json"), "w").write("{not json")
        d = rig.start_daemon(path)
        d.wait_connected()
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        check("mix state ignored" in d.log_text(), "a corrupt mix.json is reported")
        rig.freewheel(True)
        sink.record(3.0)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 2.0) < 0.02, "and the config's mix plays (master -2, send 0)")

        # A fader ride over the control socket: a move every 100 ms for 3 s. mix.json is saved as
        # it goes (at most once a second), not only once the moves stop.
        mix_path = os.path.join(state, "mix.json")

        def saved_master():
            try:
                return json.load(open(mix_path))["musicians"]["drums"]["master"]["live"]
            except (OSError, ValueError, KeyError):
                return None
        inodes, values = set(), set()
        t = time.monotonic()
        for i in range(30):
            r = d.request({"cmd": "set", "musician": "drums", "master_db": round(-2.1 - 0.1 * i, 1)})
            check(r.get("ok") is True, f"move {i + 1}: master {-2.1 - 0.1 * i:.1f} dB") if i in (0, 29) else None
            deadline = t + 0.1 * (i + 1)
            while time.monotonic() < deadline:
                try:
                    inodes.add(os.stat(mix_path).st_ino)
                except OSError:
                    pass
                values.add(saved_master())
                time.sleep(0.01)
        ride_s = time.monotonic() - t
        moved = sorted(v for v in values if v is not None and v < -2.0)
        check(len(moved) >= 2, f"during the {ride_s:.1f} s ride mix.json was saved with {moved}")
        check(len(inodes) <= ride_s + 2, f"at most once a second ({len(inodes)} files in {ride_s:.1f} s)")
        wait_for(lambda: saved_master() == -5.0, 2, "the last move (-5.0) to be saved")
        check(True, "the last move is saved within a second of the end of the ride")

        # SIGKILL: what was saved comes back.
        d.kill()
        d = rig.start_daemon(path)
        d.wait_connected()
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        rig.freewheel(True)
        sink.record(3.0)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 5.0) < 0.02, f"after SIGKILL the ride's end is restored ({db(rms(y[0]) / FULL):+.2f} dB)")

        # SIGTERM right after a move (before the once-a-second save): the shutdown saves it.
        r = d.request({"cmd": "set", "musician": "drums", "master_db": -7})
        check(r.get("ok") is True, "a move just before SIGTERM")
        check(d.stop() == 0, "SIGTERM: exit 0")
        check(saved_master() == -7.0, "SIGTERM saved it")
        d = rig.start_daemon(path)
        d.wait_connected()
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        rig.freewheel(True)
        sink.record(3.0)
        _, y = sink.record(0.5)
        rig.freewheel(False)
        check(abs(db(rms(y[0]) / FULL) + 7.0) < 0.02, f"and the restart restores it ({db(rms(y[0]) / FULL):+.2f} dB)")
        check(d.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
