#!/usr/bin/python3
"""The live mix survives a restart (issue 4): <state-dir>/mix.json is restored at start-up, ramped
from silence; where the config changed a value since it was saved, the config wins; a corrupt file is
reported and ignored (the config's mix is used)."""

import json
import os
import signal

import numpy as np

from harness import (Rig, base_config, check, db, envelope, main_wrapper, rms, sine, wait_for)

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

        src = None
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]
        src = rig.player("src", outs=["out"])
        src.gen = sine(1000.0, AMP)
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        rig.freewheel(True)
        _, y = sink.record(4.0)
        rig.freewheel(False)
        env = envelope(y[0], 480)
        check(env[0] < 0.5 * env[-1], "the restored mix fades in (start-up ramp), it does not start at its level")
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
        check(d.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
