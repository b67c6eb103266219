#!/usr/bin/python3
"""Benchmark: MIDI event -> audible gain change, in periods (docs/midi.md, "Latency").

For each period size, a private jackd (dummy backend, clock-driven) runs earshotd with one JACK
MIDI controller. A python JACK client sends a CC at the top of a known cycle N (its frame time);
another records earshotd's output (a DC input, so any gain change is visible on the first sample
it touches). The first changed sample, minus the limiter's look-ahead, falls in cycle K; the
figure is K - N: 0 = the same period (RtMidi's client ran before earshotd's in that cycle and the
control thread was quicker still), 1 = the next period (SPEC §6). Windows with an xrun in them
(the change appears before the CC was sent, or never) are skipped and counted. The last column is
how many eventfd writes (the callback's system call) the controller's events took.

    /usr/bin/python3 tests/daemon/bench_midi.py build/src/daemon/earshotd [--periods 64,128,256] [--n 40]
"""

import argparse
import statistics
import sys
import threading
import time

import numpy as np

from harness import Rig, TestFailure, wait_for
from midi_clients import MidiSender, cc

DC = 0.1


def config(server):
    return f"""version: 1
jack:
  client_name: earshot-{server}
mixer: {{ ramp_ms: 5, startup_ramp_ms: 50 }}
inputs:
  - id: tone
    connect: ["/src-{server}:out/"]
musicians:
  - id: m
    output: mono
    connect: ["sink-{server}:in"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix: {{ sends: {{ tone: {{ gain_db: 0 }} }} }}
controllers:
  - id: bench
    api: jack
    port: "bench-{server}:out"
    mappings:
      - {{ cc: 7, action: master, musician: m }}
"""


def measure(earshotd, period, n):
    with Rig(earshotd, period=period) as rig:
        rig.start_jack()
        sender = MidiSender(rig, "bench")
        src = rig.player("src", outs=["out"])
        src.gen = lambda t0, k: np.full(k, DC)
        sink = rig.player("sink", ins=["in"])
        d = rig.start_daemon(rig.write_config(config(rig.server)))
        d.wait_connected()
        wait_for(lambda: d.status()["midi"]["controllers"][0]["state"] == "open", 10, "the controller to open")
        time.sleep(0.5)
        lookahead = d.status()["jack"]["latency_frames"]
        lat, skipped = [], 0
        for k in range(n):
            v = 100 if k % 2 == 0 else 127
            out = {}
            th = threading.Thread(target=lambda: out.update(r=sink.record(0.25)))
            th.start()
            time.sleep(0.08)
            n0 = len(sender.sent)
            sender.send(cc(7, v))
            th.join()
            t0, y = out["r"]
            if len(sender.sent) <= n0:
                raise TestFailure("the CC was not sent")
            t_send = sender.sent[n0][0]
            x = y[0]
            changed = np.nonzero(np.abs(x - x[0]) > 1e-6 * DC)[0]
            if len(changed) == 0 or t0 + changed[0] - lookahead < t_send:
                skipped += 1
                continue
            lat.append(int((t0 + int(changed[0]) - lookahead - t_send) // period))
        s = d.status()
        xruns = s["jack"]["xruns"]
        c = s["midi"]["controllers"][0]
        d.stop()
        return lat, skipped, xruns, (c["wakeups"], c["events"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("earshotd")
    ap.add_argument("--periods", default="64,128,256")
    ap.add_argument("--n", type=int, default=40)
    a = ap.parse_args()
    print(f"{'period':>6} {'n':>4} {'same':>5} {'next':>5} {'later':>5} {'median':>6} {'max':>4} {'skipped':>7} {'xruns':>5}"
          f" {'wakeups/events':>14}")
    for p in [int(x) for x in a.periods.split(",")]:
        lat, skipped, xruns, (wakeups, events) = measure(a.earshotd, p, a.n)
        if not lat:
            print(f"{p:>6}: no measurement ({skipped} skipped)")
            continue
        same = sum(1 for x in lat if x == 0)
        nxt = sum(1 for x in lat if x == 1)
        later = sum(1 for x in lat if x > 1)
        print(f"{p:>6} {len(lat):>4} {same:>5} {nxt:>5} {later:>5} {statistics.median(lat):>6} {max(lat):>4} "
              f"{skipped:>7} {xruns:>5} {wakeups:>6}/{events:<7}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except TestFailure as e:
        print("FAIL:", e)
        sys.exit(1)
