#!/usr/bin/python3
"""MIDI control surfaces end to end (issue 5), against a private jackd: real JACK MIDI clients
(python3-jack-client) play two controllers whose ports earshotd opens through RtMidi's JACK API.

Checked: CCs, notes, a relative encoder and a 14-bit pair change the output by the mapped amount
(freewheel, exact); the event reaches the audio in the next period (clock-driven, counted in
periods from the cycle the CC was sent in); more me, talkback, dim and scene recall; a controller
bound to one musician cannot change another's mix or any ceiling, even flooded with random bytes,
SysEx and truncated messages; the LEDs (mute, dose green/amber/red) arrive at a JACK MIDI input;
the controller's port disappears and returns and control resumes (and its LEDs are resent); MIDI
learn from the CLI, its timeout, its persistence across a reload, and from a pad's learn button."""

import json
import os
import random
import subprocess
import threading
import time

import numpy as np

from harness import FS, Rig, TestFailure, check, db, main_wrapper, rms, wait_for
from midi_clients import MidiCapture, MidiSender, cc, note_off, note_on

DC = 0.1
HALF = DC * np.sqrt(0.5)  # a centre-panned DC send on a stereo output, per side


def config(server):
    return f"""version: 1
jack:
  client_name: earshot-{server}
mixer:
  ramp_ms: 5
  startup_ramp_ms: 100
inputs:
  - id: tone
    connect: ["/src-{server}:out/"]
  - id: sine
    connect: ["/src-{server}:sine/"]
  - id: talk
musicians:
  - id: drums
    output: stereo
    connect: ["sink-{server}:in_L", "sink-{server}:in_R"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix:
      sends:
        tone: {{ gain_db: 0 }}
  - id: bass
    output: mono
    connect: ["sink-{server}:in_m"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix:
      master_db: -6
      sends:
        tone: {{ gain_db: 0 }}
  - id: vox
    output: mono
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix:
      sends:
        sine: {{ gain_db: 0 }}
controllers:
  - id: desk
    api: jack
    port: "desk-{server}:out"
    feedback: "/leds-{server}:in/"
    palette: {{ off: 0, green: 1, green_blink: 2, red: 3, red_blink: 4, amber: 5, amber_blink: 6 }}
    dose: {{ amber_pct: 0.001, red_pct: 0.04 }}
    dose_leds: [ {{ musician: vox, note: 40 }} ]
    mappings:
      - {{ cc: 7, channel: 1, action: master, musician: drums }}
      - {{ note: 60, channel: 1, action: send_mute, musician: drums, input: tone }}
      - {{ cc: 20, kind: relative_twos_complement, step_db: 1, max_db: 6, action: send_gain, musician: bass, input: tone }}
      - {{ cc14: [1, 33], action: master, musician: bass, min_db: -40, max_db: 0 }}
      - {{ note: 61, kind: momentary, action: more_me, musician: drums, inputs: [tone], amount_db: 6 }}
      - {{ note: 62, action: talkback, input: talk, amount_db: -15 }}
      - {{ note: 63, action: dim_all, amount_db: -20 }}
      - {{ note: 64, action: scene, scene: verse }}
      - {{ note: 5, action: learn, target: drums.master }}
  - id: pad
    api: jack
    port: "padsrc-{server}:out"
    musician: bass
    mappings:
      - {{ cc: 7, action: master }}
      - {{ cc: 8, action: send_gain, input: tone }}
      - {{ note: 1, action: panic }}
      - {{ note: 2, action: scene, scene: verse }}
      - {{ note: 3, action: talkback, amount_db: -20 }}
      - {{ note: 4, action: dim_all }}
  - id: usb
    api: alsa
    port: "APC MINI"
"""


def db_curve(v, lo=-60.0, hi=0.0):
    """The `db` curve: x = v / 127, gain = lo + x (hi - lo); 0 is off."""
    return lo + (v / 127.0) * (hi - lo)


def run(earshotd):
    earshot = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(earshotd))), "cli", "earshot")
    with Rig(earshotd) as rig:
        rig.start_jack()
        path = rig.write_config(config(rig.server))
        run_dir = os.path.join(rig.tmp, "run")
        env = dict(os.environ, EARSHOT_SOCKET=os.path.join(run_dir, "control.sock"))

        def cli(*args, timeout=30):
            p = subprocess.run([earshot, *args], env=env, capture_output=True, text=True, timeout=timeout)
            return p.returncode, p.stdout, p.stderr

        # The controllers and the LED input exist before earshotd, the audio players too.
        desk = MidiSender(rig, "desk")
        pad = MidiSender(rig, "padsrc", per_cycle=64)
        leds = MidiCapture(rig, "leds")
        src = rig.player("src", outs=["out", "sine"])
        src.gen = lambda t0, n: np.stack([np.full(n, DC), 0.1 * np.sin(2 * np.pi * 1000 * (np.arange(n) + t0) / FS)])
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m"])
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]

        def ctl(cid, s=None):
            s = s or d.status()
            return next(c for c in s["midi"]["controllers"] if c["id"] == cid)

        def mix(mid, s=None):
            return d.musician(mid, s)["mix"]

        wait_for(lambda: d.status() and ctl("desk")["state"] == "open" and ctl("pad")["state"] == "open"
                 and ctl("desk")["feedback_port"], 10, "both controllers to open")
        s = d.status()
        check(ctl("desk", s)["port"] == desk.full_name() and ctl("pad", s)["port"] == pad.full_name(),
              f"earshotd opened the controllers' JACK MIDI ports through RtMidi ({ctl('desk', s)['client']})")
        check(ctl("desk", s)["feedback_port"] == f"{leds.name}:in", "and the LED port for feedback")
        check(ctl("desk", s)["client"].endswith(f"-{d.p.pid}"), "its RtMidi clients are named uniquely (pid)")
        check(ctl("usb", s)["state"] == "waiting" and "the alsa API is not available" in d.log_text(),
              "an api: alsa controller without an ALSA sequencer (this machine): logged, waited for, no harm")
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")

        fw = {"hold": False}  # freewheel held on: no xrun can drop a MIDI message (LED checks)

        def level(port=0, seconds=0.2):
            if not fw["hold"]:
                rig.freewheel(True)
            sink.record(0.1)
            _, y = sink.record(seconds)
            if not fw["hold"]:
                rig.freewheel(False)
            return y[port]

        def hold_freewheel(on):
            fw["hold"] = on
            rig.freewheel(on)

        def deliver(sender, cid, *msgs):
            """Sends each message and waits until earshotd's decoder has it. Clock-driven JACK on a
            loaded 2-vCPU machine can drop a cycle (an xrun) and the MIDI written in it: such a
            message is sent again (only when nothing of it arrived, so a toggle never flips twice)."""
            for m in msgs:
                for attempt in range(4):
                    before = ctl(cid)["events"]
                    sender.send(m)
                    try:
                        wait_for(lambda: ctl(cid)["events"] > before, 2, f"{cid} to receive {m.hex()}")
                        break
                    except TestFailure:
                        if attempt == 3:
                            raise

        def move(sender, cid, msg, what, pred):
            """An idempotent message (an absolute CC): resent until the state shows it. Under load a
            clock-driven cycle can lose MIDI written during an xrun, and a late duplicate of an
            earlier message can make deliver()'s event count look satisfied."""
            for attempt in range(5):
                sender.send(msg)
                try:
                    return settle(what, pred, timeout=2 if attempt < 4 else 5)
                except TestFailure:
                    if attempt == 4:
                        raise

        def settle(what, pred, timeout=5):
            def ok():
                s = d.status()
                return s if s and pred(s) else None
            return wait_for(ok, timeout, what)

        # --- a CC moves a master by the mapped amount -------------------------------------------
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "drums at 0 dB before any MIDI")
        move(desk, "desk", cc(7, 64), "drums master from CC 7", lambda s: abs(mix("drums", s)["master_db"] - db_curve(64)) < 0.006)
        got = db(rms(level(0)) / HALF)
        check(abs(got - db_curve(64)) < 0.01, f"CC 7 = 64 -> drums master {got:+.3f} dB (curve db: {db_curve(64):+.3f})")
        deliver(desk, "desk", cc(7, 127, ch=1))  # another channel: not this mapping
        time.sleep(0.3)
        check(abs(mix("drums")["master_db"] - db_curve(64)) < 0.006, "a CC on channel 2 does nothing (channel filter)")
        move(desk, "desk", cc(7, 127), "drums back to 0 dB", lambda s: mix("drums", s)["master_db"] == 0)

        # --- latency: the next period (clock-driven, period 256) ---------------------------------
        lat = []
        lookahead = d.status()["jack"]["latency_frames"]
        for k in range(8):
            v = 100 if k % 2 == 0 else 127
            out = {}
            th = threading.Thread(target=lambda: out.update(r=sink.record(0.4)))
            th.start()
            time.sleep(0.15)
            n0 = len(desk.sent)
            desk.send(cc(7, v))
            th.join()
            t0, y = out["r"]
            if len(desk.sent) <= n0:
                raise TestFailure("the CC was not sent")
            t_send = desk.sent[n0][0]
            x = y[0]
            changed = np.nonzero(np.abs(x - x[0]) > 1e-6 * HALF)[0]
            if len(changed) == 0 or t0 + changed[0] < t_send:
                continue  # an xrun in the window: not a measurement
            lat.append((t0 + int(changed[0]) - lookahead - t_send) // rig.period)
        check(len(lat) >= 5, f"{len(lat)} latency measurements")
        # Clock-driven on a non-RT dummy server: a scheduling hiccup may delay one; most must not.
        check(sorted(lat)[len(lat) // 2] <= 1 and sum(1 for x in lat if x <= 1) >= 0.7 * len(lat),
              f"MIDI event -> audio, in periods of 256 after the CC's period: {lat} (SPEC §6: the next period)")
        move(desk, "desk", cc(7, 127), "drums back to 0 dB", lambda s: mix("drums", s)["master_db"] == 0)

        # --- freewheel: the change lands a few periods later, by the exact mapped amount ---------
        out = {}
        rig.freewheel(True)
        th = threading.Thread(target=lambda: out.update(r=sink.record(3.0)))
        th.start()
        time.sleep(0.01)
        n0 = len(desk.sent)
        desk.send(cc(7, 90))
        th.join()
        rig.freewheel(False)
        t0, y = out["r"]
        x = y[0]
        changed = np.nonzero(np.abs(x - x[0]) > 1e-6 * HALF)[0]
        check(len(changed) > 0 and len(desk.sent) > n0, "freewheel: the CC changed the output during the recording")
        fw_periods = (t0 + int(changed[0]) - lookahead - desk.sent[n0][0]) // rig.period
        tail = db(rms(x[-4800:]) / HALF)
        check(abs(tail - db_curve(90)) < 0.01,
              f"freewheel: {fw_periods} period(s) after the CC the level moved, to {tail:+.3f} dB (mapped {db_curve(90):+.3f})")
        move(desk, "desk", cc(7, 127), "drums back to 0 dB", lambda s: mix("drums", s)["master_db"] == 0)

        # --- mute toggle (note) and its LED (in freewheel: nothing lost to an xrun) ----------------
        hold_freewheel(True)
        wait_for(lambda: leds.notes(60), 5, "the mute LED's first state")
        check(leds.notes(60)[-1] == 0, "the mute LED starts off (note 60 velocity 0)")
        deliver(desk, "desk", note_on(60), note_off(60))
        settle("drums tone muted", lambda s: mix("drums", s)["sends"]["tone"]["mute"])
        check(rms(level(0)) < 0.006, "note 60 mutes drums' tone send (silence)")
        wait_for(lambda: leds.notes(60)[-1] == 3, 3, "the mute LED to go red")
        check(True, "the LED feedback arrived at the JACK MIDI input: note 60 velocity 3 (red)")
        deliver(desk, "desk", note_on(60), note_off(60))
        settle("drums tone unmuted", lambda s: not mix("drums", s)["sends"]["tone"]["mute"])
        wait_for(lambda: leds.notes(60)[-1] == 0, 3, "the mute LED off again")
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "a second press unmutes (toggle), the LED goes off")
        hold_freewheel(False)

        # --- relative encoder and 14-bit pair ----------------------------------------------------
        deliver(desk, "desk", cc(20, 1), cc(20, 1), cc(20, 1), cc(20, 127))
        settle("bass tone +2 dB", lambda s: abs(mix("bass", s)["sends"]["tone"]["gain_db"] - 2.0) < 0.006)
        check(True, "relative encoder (two's complement): +1 +1 +1 -1 steps of 1 dB -> bass tone +2 dB")
        deliver(desk, "desk", cc(1, 100), cc(33, 64))
        want = -40.0 + (100 * 128 + 64) / 16383.0 * 40.0
        settle("bass master from the 14-bit pair", lambda s: abs(mix("bass", s)["master_db"] - want) < 0.006)
        got = db(rms(level(2)) / DC)
        check(abs(got - (want + 2.0)) < 0.01, f"14-bit CC 1/33 -> bass master {want:+.4f} dB; output {got:+.3f} dB")

        # --- more me, talkback, dim, scene ---------------------------------------------------------
        rc, _, _ = cli("scene", "save", "verse")
        check(rc == 0, "earshot scene save verse")
        verse_bass = mix("bass")["master_db"]
        deliver(desk, "desk", note_on(61))
        time.sleep(0.3)
        got = db(rms(level(0)) / HALF)
        check(abs(got - 6.0) < 0.01, f"more me held: drums' tone +6 dB ({got:+.3f})")
        deliver(desk, "desk", note_off(61))
        time.sleep(0.3)
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "released: back to 0 dB (momentary, the mix itself unchanged)")
        check(mix("drums")["sends"]["tone"]["gain_db"] == 0, "more me is a layer: the stored mix did not move")
        deliver(desk, "desk", note_on(62))
        time.sleep(0.3)
        got = db(rms(level(0)) / HALF)
        check(abs(got + 15.0) < 0.01, f"talkback held: every mix ducked by 15 dB ({got:+.3f})")
        deliver(desk, "desk", note_off(62))
        time.sleep(0.3)
        deliver(desk, "desk", note_on(63), note_off(63))
        settle("dim", lambda s: s["mixer"]["dim_db"] == -20)
        got = db(rms(level(0)) / HALF)
        check(abs(got + 20.0) < 0.01, f"dim_all (toggle): -20 dB on every mix ({got:+.3f})")
        deliver(desk, "desk", note_on(63), note_off(63))
        settle("dim off", lambda s: s["mixer"]["dim_db"] is None)
        move(desk, "desk", cc(7, 64), "drums moved", lambda s: mix("drums", s)["master_db"] != 0)
        deliver(desk, "desk", note_on(64), note_off(64))
        settle("scene verse recalled", lambda s: mix("drums", s)["master_db"] == 0)
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "note 64 recalls scene 'verse' for everyone")

        # --- the bound pad: only bass, never a ceiling ---------------------------------------------
        before = d.status()
        move(pad, "pad", cc(7, 127), "bass master from the pad", lambda s: mix("bass", s)["master_db"] == 0)
        check(mix("drums")["master_db"] == mix("drums", before)["master_db"], "the pad moved bass' master only")
        move(desk, "desk", cc(7, 100), "drums from the desk", lambda s: abs(mix("drums", s)["master_db"] - db_curve(100)) < 0.006)
        deliver(pad, "pad", note_on(2), note_off(2))  # its scene recall: bass' part of 'verse' only
        s = settle("bass back to the scene", lambda s: mix("bass", s)["master_db"] == verse_bass)
        check(abs(mix("drums", s)["master_db"] - db_curve(100)) < 0.006,
              "the pad's scene recall left drums alone (SPEC §3.5: only its musician's part)")
        deliver(pad, "pad", note_on(1))
        time.sleep(0.3)
        y_b = level(2)
        y_d = level(0)
        check(rms(y_b) == 0 and abs(db(rms(y_d) / HALF) - db_curve(100)) < 0.01,
              "the pad's panic silenced bass only; drums play on")
        check(d.status()["mixer"]["panic"] is False, "(a bound panic is not everyone's panic)")

        # A flood of random bytes, SysEx, running status and cut messages from the bound pad.
        drums_before = mix("drums")
        ceilings = {m["id"]: m["ceiling_db_spl"] for m in d.status()["musicians"]}
        rnd = random.Random(5)
        junk = []
        for _ in range(3000):
            k = rnd.random()
            if k < 0.5:
                junk.append(bytes([0xB0 | rnd.randrange(16), rnd.randrange(128), rnd.randrange(128)]))
            elif k < 0.7:
                junk.append(bytes([0x90 | rnd.randrange(16), rnd.randrange(128), rnd.randrange(128)]))
            elif k < 0.8:
                junk.append(bytes([0xF0, 1, 2, 3, 0xF7]))
            elif k < 0.9:
                junk.append(bytes([0xB0, 7]))  # truncated
            else:
                junk.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 6))))
        pad.per_cycle = 2000  # everything in a few cycles: more than the queue holds
        pad.send(*junk)
        wait_for(pad.idle, 10, "the flood to be sent")
        time.sleep(1.0)
        s = d.status()
        p = ctl("pad", s)
        check(d.alive(), f"flood of {len(junk)} messages: earshotd alive; pad counters: events {p['events']}, "
                         f"decoder errors {p['decoder_errors']}, queue drops {p['queue_drops']}")
        check(p["decoder_errors"] > 0, "garbage and cut messages are counted, not trusted")
        check(mix("drums", s) == drums_before, "the bound pad's flood did not change drums' mix")
        check({m["id"]: m["ceiling_db_spl"] for m in s["musicians"]} == ceilings, "nor any ceiling")
        check(p["scope_rejected"] == 0, "and nothing out of scope was even attempted (scope_rejected 0)")
        check(abs(db(rms(level(0)) / HALF) - db_curve(100)) < 0.01, "drums still play at the desk's level")
        pad.per_cycle = 64

        # --- hot-plug: the desk disappears and returns ---------------------------------------------
        leds_before = len(leds.events)  # (clock-driven: JACK refuses to activate a client in freewheel)
        desk.close()
        rig.players.remove(desk)
        wait_for(lambda: ctl("desk")["state"] == "waiting", 5, "earshotd to notice the desk is gone")
        check(d.alive(), "the desk's port disappeared: earshotd waits for it")
        desk = MidiSender(rig, "desk")
        wait_for(lambda: ctl("desk")["state"] == "open", 5, "the desk to be reopened")
        check(ctl("desk")["reconnects"] == 1, "the desk came back and was reopened (reconnects 1), no restart")
        wait_for(lambda: len(leds.events) > leds_before, 3, "LEDs resent after the replug")
        check(leds.notes(60)[-1] == 0, "its LEDs were resent (resync)")
        move(desk, "desk", cc(7, 127), "control resumed", lambda s: mix("drums", s)["master_db"] == 0)
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "control resumes: CC 7 = 127 -> drums at 0 dB")

        # --- MIDI learn ---------------------------------------------------------------------------
        proc = subprocess.Popen([earshot, "learn", "drums.send.tone"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: d.status()["midi"]["learning"] == "drums.send.tone", 5, "learn to start")
        deliver(desk, "desk", cc(21, 100))
        out_, err_ = proc.communicate(timeout=15)
        check(proc.returncode == 0 and "drums.send.tone" in out_ and "cc 21" in out_,
              f"earshot learn drums.send.tone + CC 21 moved: {out_.strip()}")
        learned = json.load(open(os.path.join(rig.tmp, "state", "midi-learn.json")))
        check(learned["controllers"]["desk"][0]["target"] == "drums.send.tone", "saved in midi-learn.json")
        move(desk, "desk", cc(21, 64), "learned CC 21", lambda s: abs(mix("drums", s)["sends"]["tone"]["gain_db"] - db_curve(64)) < 0.006)
        check(True, "CC 21 now drives drums' tone send")
        rc, out_, _ = cli("reload")
        move(desk, "desk", cc(21, 127), "learned CC 21 after reload", lambda s: mix("drums", s)["sends"]["tone"]["gain_db"] == 0)
        check(rc == 0, "the learned binding survives a reload")
        t = time.monotonic()
        rc, _, err_ = cli("learn", "bass.master")
        check(rc == 1 and "no control moved" in err_ and time.monotonic() - t > 9,
              f"nothing moved: the learn times out after 10 s ({err_.strip()})")
        # From the pad's learn button: its target is drums.master.
        deliver(desk, "desk", note_on(5), note_off(5))
        wait_for(lambda: d.status()["midi"]["learning"] == "drums.master", 5, "learn from the pad")
        deliver(desk, "desk", cc(22, 127))
        wait_for(lambda: d.status()["midi"]["learning"] is None, 5, "the pad's learn to finish")
        move(desk, "desk", cc(22, 64), "learned CC 22", lambda s: abs(mix("drums", s)["master_db"] - db_curve(64)) < 0.006)
        check(True, "learn button held + CC 22 moved: CC 22 now drives drums' master")

        # --- dose LED: green, amber, red as vox's dose grows (clock-driven audio is heard) ----------
        wait_for(lambda: 3 in leds.notes(40), 20, "the dose LED to turn red", interval=0.2)
        seq = [v for i, v in enumerate(leds.notes(40)) if i == 0 or v != leds.notes(40)[i - 1]]
        # (Clock-driven, so that the audio counts as heard; an xrun may drop one LED message.)
        check(seq[0] == 1 and seq[-1] == 3 and (5 not in seq or seq.index(5) < seq.index(3)),
              f"vox's dose LED (note 40): {seq} = green, amber, red at 0.001 % and 0.04 %")

        s = d.status()
        for cid in ("desk", "pad"):
            c = ctl(cid, s)
            check(c["scope_rejected"] == 0, f"{cid}: scope_rejected 0, {c['events']} events, {c['actions']} actions")
        check(d.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
