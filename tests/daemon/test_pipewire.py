#!/usr/bin/python3
"""earshotd on PipeWire's JACK (pw-jack) instead of jackd: a private headless `pipewire` (its own
XDG_RUNTIME_DIR, no session manager needed, jack-testing.md §8), earshotd and the test's clients all
under pw-jack with PIPEWIRE_QUANTUM=256/48000: ports, auto-connect, the reported latency and audio at
the calibrated level; then a sample-rate change (pw-metadata clock.force-rate 44100), which jackd
cannot do: a new engine at the new rate, the mix fades in again from silence, the latency follows
(44 frames), and the old engine's open second reaches the dose. Skipped (exit 77) when PipeWire is
not installed."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

PW_JACK_LIB = None
for d in ("/usr/lib/x86_64-linux-gnu/pipewire-0.3/jack", "/usr/lib/aarch64-linux-gnu/pipewire-0.3/jack"):
    if os.path.exists(os.path.join(d, "libjack.so.0")):
        PW_JACK_LIB = d

if not (shutil.which("pipewire") and PW_JACK_LIB):
    print("SKIP: pipewire / pipewire-jack not installed")
    sys.exit(77)

# libjack is chosen when python-jack loads it: re-run this script with PipeWire's libjack first.
if os.environ.get("EARSHOT_PW_CHILD") != "1":
    rt = tempfile.mkdtemp(prefix="earshot-pw-")
    os.chmod(rt, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=rt, EARSHOT_PW_CHILD="1", PIPEWIRE_QUANTUM="256/48000",
               LD_LIBRARY_PATH=PW_JACK_LIB, PIPEWIRE_LOG_SYSTEMD="false")
    env.pop("JACK_DEFAULT_SERVER", None)
    log = open(os.path.join(rt, "pipewire.log"), "w")
    pw = subprocess.Popen(["pipewire"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(rt, "pipewire-0")):
            if pw.poll() is not None or time.monotonic() > deadline:
                print("FAIL: pipewire did not start:", open(os.path.join(rt, "pipewire.log")).read()[-2000:])
                sys.exit(1)
            time.sleep(0.05)
        rc = subprocess.call([sys.executable] + sys.argv, env=env)
    finally:
        pw.terminate()
        try:
            pw.wait(5)
        except subprocess.TimeoutExpired:
            pw.kill()
        shutil.rmtree(rt, ignore_errors=True)
    sys.exit(rc)

import json  # noqa: E402

import jack  # noqa: E402  (PipeWire's libjack, via LD_LIBRARY_PATH)
import numpy as np  # noqa: E402

from harness import check, db, main_wrapper, wait_for  # noqa: E402

jack.set_error_function(lambda m: None)


def run(earshotd):
    tag = f"pw{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="earshotd-pw-")
    cfg = os.path.join(tmp, "earshot.yaml")
    open(cfg, "w").write(f"""version: 1
jack: {{ client_name: earshot-{tag} }}
mixer: {{ startup_ramp_ms: 200 }}
inputs:
  - id: tone
    connect: ["/src-{tag}:out/"]
musicians:
  - id: drums
    output: stereo
    connect: ["sink-{tag}:in_L", "sink-{tag}:in_R"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix: {{ sends: {{ tone: {{ gain_db: 0 }} }} }}
""")
    d = subprocess.Popen([earshotd, "--config", cfg, "--state-dir", tmp + "/state", "--runtime-dir", tmp + "/run",
                          "--no-mlock"], stdout=open(tmp + "/earshotd.log", "w"), stderr=subprocess.STDOUT)
    clients = []
    try:
        def status():
            try:
                return json.load(open(tmp + "/run/status.json"))
            except (OSError, ValueError):
                return None
        st = wait_for(lambda: (status() or {}).get("jack", {}).get("state") == "connected" and status(), 15,
                      "earshotd on PipeWire")
        check(st["jack"]["sample_rate"] == 48000 and st["jack"]["period"] == 256,
              f"joined PipeWire's JACK at {st['jack']['sample_rate']} Hz / {st['jack']['period']} (quantum)")
        me = st["jack"]["client"]

        src = jack.Client(f"src-{tag}", no_start_server=True)
        out = src.outports.register("out")
        sink = jack.Client(f"sink-{tag}", no_start_server=True)
        ins = [sink.inports.register("in_L"), sink.inports.register("in_R")]
        blocks = []
        phase = [0]

        @src.set_process_callback
        def _p(n):
            t = np.arange(n) + phase[0]
            out.get_array()[:] = 0.1 * np.sin(2 * np.pi * 1000.0 * t / 48000)
            phase[0] += n

        @sink.set_process_callback
        def _s(n):
            blocks.append(ins[0].get_array().copy())
        clients += [src, sink]
        src.activate()
        sink.activate()

        def connected():
            try:
                a = [p.name for p in sink.get_all_connections(f"{me}:drums_L")]
                b = [p.name for p in sink.get_all_connections(f"{me}:tone")]
                return a == [f"sink-{tag}:in_L"] and b == [f"src-{tag}:out"]
            except jack.JackError:
                return False
        wait_for(connected, 10, "auto-connect under PipeWire")
        check(True, "auto-connect rules work under PipeWire")
        lsp = subprocess.run(["jack_lsp", "-l"], capture_output=True, text=True).stdout.splitlines()
        i = lsp.index(f"{me}:drums_L")
        cap = [l for l in lsp[i + 1:i + 3] if "capture latency" in l]
        check(cap and "[ 48 48 ]" in cap[0], f"drums_L reports its look-ahead through PipeWire: {cap}")
        time.sleep(1.0)  # past the fade-in
        blocks.clear()
        time.sleep(1.0)
        y = np.concatenate(blocks[2:])
        level = db(np.sqrt(np.mean(y.astype(np.float64) ** 2)) * np.sqrt(2))
        check(abs(level - (-23.0103)) < 0.1, f"drums_L plays at {level:.2f} dBFS peak (expected -23.01)")

        # A sample-rate change, away from a minute boundary (the journal then still holds the
        # seconds around it: a CSV row would sum them up).
        while not 5 <= time.time() % 60 <= 40:
            time.sleep(0.2)
        blocks.clear()
        subprocess.run(["pw-metadata", "-n", "settings", "0", "clock.force-rate", "44100"], capture_output=True,
                       timeout=10)
        st = wait_for(lambda: (status() or {}).get("jack", {}).get("sample_rate") == 44100 and status(), 10,
                      "earshotd at 44.1 kHz")
        log = open(tmp + "/earshotd.log").read()
        check("JACK sample rate is now 44100 Hz: new engine" in log, "the rate change is handled: a new engine")
        check(st["jack"]["latency_frames"] == 44, f"status.json: latency {st['jack']['latency_frames']} frames (1 ms at 44.1 kHz)")
        lsp = subprocess.run(["jack_lsp", "-l"], capture_output=True, text=True).stdout.splitlines()
        i = lsp.index(f"{me}:drums_L")
        cap = [l for l in lsp[i + 1:i + 3] if "capture latency" in l]
        check(cap and "[ 44 44 ]" in cap[0], f"JACK is told the new look-ahead: {cap}")
        time.sleep(2.5)
        y = np.concatenate(blocks)
        # The change: the outputs go silent at once (no engine for the new rate yet: fail silent),
        # then the new engine fades in. The last run of exact zeros is that gap.
        z = np.concatenate(([0], (y == 0).astype(np.int8), [0]))
        starts, ends = np.nonzero(np.diff(z) == 1)[0], np.nonzero(np.diff(z) == -1)[0]
        runs = [(a, b) for a, b in zip(starts, ends) if b - a >= 128]
        check(len(runs) > 0, f"the outputs were silenced at the change ({[(int(b - a)) for a, b in runs]} samples)")
        on = np.nonzero(np.abs(y[runs[-1][1]:]) > 0)[0] + runs[-1][1]
        check(len(on) > 0, "audio flows at the new rate")
        final = float(np.max(np.abs(y[-44100:])))
        first = float(np.max(np.abs(y[on[0]:on[0] + 882])))  # the first 20 ms of a 200 ms fade
        check(abs(db(final) - (-23.0103)) < 0.2 and first < 0.3 * final,
              f"the mix fades in again: {db(first / final):.1f} dB in the first 20 ms, then {db(final):.2f} dBFS peak")
        journal = os.path.join(tmp, "state", "exposure", "drums", "journal")
        secs = [float(l.split(",")[1]) for l in open(journal).read().splitlines() if l.count(",") >= 8]
        partial = [x for x in secs if 0 < x < 0.9999]
        check(len(partial) == 1, f"the old engine's open second went into the dose ({partial} s, journal {len(secs)} lines)")
        d.terminate()
        check(d.wait(10) == 0, "SIGTERM: exit 0")
    finally:
        for c in clients:
            try:
                c.deactivate()
                c.close()
            except Exception:
                pass
        if d.poll() is None:
            d.kill()
        sys.stdout.write(open(tmp + "/earshotd.log").read()[-2000:])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main_wrapper(run)
