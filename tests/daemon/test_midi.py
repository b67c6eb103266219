#!/usr/bin/python3
"""MIDI control surfaces end to end (issue 5), against a private jackd: real JACK MIDI clients
(python3-jack-client) play two controllers whose ports earshotd opens through RtMidi's JACK API.

Checked:
- CCs, notes, Program Change, pitch bend, a relative encoder and a 14-bit pair change the output
  by the mapped amount (freewheel, exact); clock-driven, the event reaches the audio in the next
  period; in freewheel, the level changes by the mapped amount (within 0.005 dB) starting in the
  period after the event's (the sender stalls its next cycle for 30 ms, standing in for the time a
  real period gives the control thread, and earshotd's cycle runs after it);
- an unterminated SysEx (a cut one) does not make the controller deaf: a CC in the same cycle
  acts in the next period all the same (RtMidi 5.0.0 would drop it; the SysEx guard resends it),
  and one sent later acts too; a data-only garbage event after a CC is not taken as running status;
- more me, talkback (which opens its mic input at 0 dB), dim and scene recall;
- a controller bound to one musician cannot change another's mix or any ceiling: its talkback,
  dim, panic and learn button (with the last `earshot set` target another musician's) leave the
  other musicians' output levels untouched, even flooded with random bytes, SysEx and cut
  messages; the pad still works after the flood;
- the pad's own panic silences its musician (status says so, its LED blinks) and
  `earshot panic off` releases it;
- LED feedback (mute, panic, dose green/amber/red, a dose warning blinking) arrives at JACK MIDI
  inputs of the test;
- hot-plug: the controller's port disappears and returns (slowly, and within 50 ms), control
  resumes; the LED port is replugged within 50 ms and the LEDs are resent;
- MIDI learn from the CLI (a fader, a relative encoder told by its values, an ambiguous encoder
  refused), its timeout, from a pad's learn button, persistence across a reload and a daemon
  restart, and `earshot learn --forget`."""

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
TALK = 0.05
HALF = DC * np.sqrt(0.5)  # a centre-panned DC send on a stereo output, per side
PALETTE = "{ off: 0, green: 1, green_blink: 2, red: 3, red_blink: 4, amber: 5, amber_blink: 6 }"


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
    connect: ["/src-{server}:talk/"]
  - id: loudsrc
    connect: ["/src-{server}:loud/"]
  - id: fwtone
    connect: ["desk-{server}:tone"]
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
  - id: loud
    output: mono
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix:
      sends:
        loudsrc: {{ gain_db: 0 }}
  - id: mon
    output: mono
    connect: ["sink-{server}:in_f"]
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 110 }}
    mix:
      sends:
        fwtone: {{ gain_db: 0 }}
controllers:
  - id: desk
    api: jack
    port: "desk-{server}:out"
    feedback: "/leds-{server}:in/"
    palette: {PALETTE}
    dose: {{ amber_pct: 0.001, red_pct: 0.1 }}
    dose_leds: [ {{ musician: vox, note: 40 }}, {{ musician: loud, note: 42 }} ]
    mappings:
      - {{ cc: 7, channel: 1, action: master, musician: drums }}
      - {{ cc: 9, channel: 1, action: master, musician: mon }}
      - {{ note: 60, channel: 1, action: send_mute, musician: drums, input: tone }}
      - {{ cc: 20, kind: relative_twos_complement, step_db: 1, max_db: 6, action: send_gain, musician: bass, input: tone }}
      - {{ cc14: [1, 33], action: master, musician: bass, min_db: -40, max_db: 0 }}
      - {{ pitch_bend: true, channel: 2, action: master, musician: bass, curve: audio_taper }}
      - {{ note: 61, kind: momentary, action: more_me, musician: drums, inputs: [tone], amount_db: 6 }}
      - {{ note: 62, action: talkback, input: talk, amount_db: -15 }}
      - {{ note: 63, action: dim_all, amount_db: -20 }}
      - {{ note: 64, action: scene, scene: verse }}
      - {{ program: 5, action: scene, scene: verse }}
      - {{ note: 5, action: learn, target: drums.master }}
  - id: pad
    api: jack
    port: "padsrc-{server}:out"
    feedback: "/padleds-{server}:in/"
    palette: {PALETTE}
    musician: bass
    mappings:
      - {{ cc: 7, action: master }}
      - {{ cc: 8, action: send_gain, input: tone }}
      - {{ note: 1, action: panic }}
      - {{ note: 2, action: scene, scene: verse }}
      - {{ note: 3, action: talkback, amount_db: -20 }}
      - {{ note: 4, action: dim_all }}
      - {{ note: 5, action: learn }}
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
        state_dir = os.path.join(rig.tmp, "state")
        env = dict(os.environ, EARSHOT_SOCKET=os.path.join(run_dir, "control.sock"))

        def cli(*args, timeout=30):
            p = subprocess.run([earshot, *args], env=env, capture_output=True, text=True, timeout=timeout)
            return p.returncode, p.stdout, p.stderr

        # The controllers and the LED inputs exist before earshotd, the audio players too. The
        # desk also plays DC on `tone`, the input of musician `mon` (the freewheel checks).
        desk = MidiSender(rig, "desk", audio_outs=["tone"])
        desk.gen = lambda t0, n: np.full(n, DC)
        pad = MidiSender(rig, "padsrc", per_cycle=64)
        leds = MidiCapture(rig, "leds")
        padleds = MidiCapture(rig, "padleds")
        src = rig.player("src", outs=["out", "sine", "talk", "loud"])
        src.gen = lambda t0, n: np.stack([np.full(n, DC), 0.1 * np.sin(2 * np.pi * 1000 * (np.arange(n) + t0) / FS),
                                          np.full(n, TALK), 0.5 * np.sin(2 * np.pi * 1000 * (np.arange(n) + t0) / FS)])
        sink = rig.player("sink", ins=["in_L", "in_R", "in_m", "in_f"])
        d = rig.start_daemon(path)
        me = d.wait_connected()["jack"]["client"]

        def ctl(cid, s=None):
            s = s or d.status()
            return next(c for c in s["midi"]["controllers"] if c["id"] == cid)

        def mix(mid, s=None):
            return d.musician(mid, s)["mix"]

        def layers(mid, s=None):
            return d.musician(mid, s)["layers"]

        def opened(s):
            return s and all(ctl(c, s)["state"] == "open" for c in ("desk", "pad")) and ctl("desk", s)["feedback_port"]

        wait_for(lambda: opened(d.status()), 10, "both controllers to open")
        s = d.status()
        check(ctl("desk", s)["port"] == desk.full_name() and ctl("pad", s)["port"] == pad.full_name(),
              f"earshotd opened the controllers' JACK MIDI ports through RtMidi ({ctl('desk', s)['client']})")
        check(ctl("desk", s)["feedback_port"] == f"{leds.name}:in", "and the LED port for feedback")
        check(ctl("desk", s)["client"].endswith(f"-{d.p.pid}"), "its RtMidi clients are named uniquely (pid)")
        check(ctl("desk", s)["connected"] is True and ctl("desk", s)["sysex_guard"]["resend"] is True,
              "its input is connected to the source (checked with JACK) and the SysEx guard is on")
        check(ctl("usb", s)["state"] == "waiting" and "the alsa API is not available" in d.log_text(),
              "an api: alsa controller without an ALSA sequencer (this machine): logged, waited for, no harm")
        wait_for(lambda: rig.connections(f"{me}:drums_L") == [sink.port("in_L")], 10, "drums_L connected")
        wait_for(lambda: rig.connections(f"{me}:fwtone") == [f"{desk.name}:tone"], 10, "fwtone connected")

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

        # --- freewheel: the next period, by the exact mapped amount --------------------------------
        P = rig.period

        def fw_event(msgs, before_db, want_db, what):
            """In freewheel: sends msgs in one cycle N from the desk (which stalls cycle N+1 for
            30 ms, then earshotd's cycle N+1 runs); records mon. Returns the periods from N to the
            first changed output sample; checks the period before N at before_db and the whole
            period after the one where the change starts at want_db (the 5 ms ramp is over)."""
            out = {}
            desk.stall_s = 0.03
            hold_freewheel(True)
            try:
                th = threading.Thread(target=lambda: out.update(r=sink.record(20.0)))
                th.start()
                time.sleep(0.05)
                n0 = len(desk.sent)
                desk.send(*msgs)
                th.join()
            finally:
                hold_freewheel(False)
                desk.stall_s = 0.0
            t0, y = out["r"]
            if len(desk.sent) <= n0 or desk.sent[n0][0] < t0 + 2 * P:
                raise TestFailure(f"{what}: not sent inside the recording")
            t_send = desk.sent[n0][0]
            x = y[3]
            base = t_send - t0 + lookahead  # the first output sample of input cycle N
            changed = np.nonzero(np.abs(x[base - P:] - x[base - P]) > 1e-6 * DC)[0]
            if len(changed) == 0:
                raise TestFailure(f"{what}: the output never changed")
            periods = int((changed[0] - P) // P)
            lvl = lambda a: db(rms(a) / DC) if rms(a) > 0 else float("-inf")
            k = base + (periods + 1) * P
            before, after = lvl(x[base - P:base]), lvl(x[k:k + P])
            check(periods <= 1 and abs(before - before_db) < 0.005 and abs(after - want_db) < 0.005,
                  f"freewheel, {what}: the output moved {periods} period(s) after the event's, from "
                  f"{before:+.3f} to {after:+.3f} dB in the period after that (mapped {want_db:+.3f})")
            return periods

        fw_periods = []
        prev = 0.0
        for v in (90, 40, 127, 70):
            fw_periods.append(fw_event([cc(9, v)], prev, db_curve(v), f"CC 9 = {v}"))
            prev = db_curve(v)
        check(all(p <= 1 for p in fw_periods), f"freewheel: every CC changed the audio in the next period {fw_periods}")

        # --- a cut SysEx: RtMidi 5.0.0 would drop everything after it --------------------------------
        c0 = ctl("desk")
        fw_event([bytes([0xF0, 0x7D, 0x01]), cc(9, 100)], prev, db_curve(100),
                 "F0 7D 01 (no F7) and CC 9 = 100 in the same cycle")
        prev = db_curve(100)
        g0 = c0["sysex_guard"]
        c1 = settle("the guard's counters", lambda s: ctl("desk", s)["sysex_guard"]["resent"] > g0["resent"])
        c1 = ctl("desk", c1)
        g1 = c1["sysex_guard"]
        check(g1["cuts"] == g0["cuts"] + 1 and g1["resets"] == g0["resets"] + 1 and g1["resent"] == g0["resent"] + 1
              and g1["lost"] == 0 and c1["decoder_errors"] == c0["decoder_errors"],
              f"the SysEx guard saw the cut, ended RtMidi's wait and resent the CC (guard {g1}); nothing lost")
        desk.send(bytes([0xF0, 0x7D, 0x02, 0x03]))  # cut again, and the next CC comes later
        time.sleep(0.3)
        s = move(desk, "desk", cc(7, 110), "a CC 0.3 s after a cut SysEx",
                 lambda s: abs(mix("drums", s)["master_db"] - db_curve(110)) < 0.006)
        check(ctl("desk", s)["sysex_guard"]["cuts"] == g1["cuts"] + 1 and ctl("desk", s)["sysex_guard"]["lost"] == 0,
              "a CC sent 0.3 s after another cut SysEx acts too (the controller is not deaf)")
        move(desk, "desk", cc(7, 127), "drums back to 0 dB", lambda s: mix("drums", s)["master_db"] == 0)

        # --- a data-only event after a CC is garbage, not running status --------------------------------
        e0 = ctl("desk")["decoder_errors"]
        desk.send(bytes([0x07, 0x05]))
        wait_for(lambda: ctl("desk")["decoder_errors"] >= e0 + 2, 3, "the garbage to be counted")
        time.sleep(0.2)
        check(mix("drums")["master_db"] == 0, "`07 05` after `B0 07 7F` left drums at 0 dB (2 stray bytes counted)")

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

        # --- relative encoder, 14-bit pair, pitch bend, program change --------------------------------
        deliver(desk, "desk", cc(20, 1), cc(20, 1), cc(20, 1), cc(20, 127))
        settle("bass tone +2 dB", lambda s: abs(mix("bass", s)["sends"]["tone"]["gain_db"] - 2.0) < 0.006)
        check(True, "relative encoder (two's complement): +1 +1 +1 -1 steps of 1 dB -> bass tone +2 dB")
        deliver(desk, "desk", cc(1, 100), cc(33, 64))
        want = -40.0 + (100 * 128 + 64) / 16383.0 * 40.0
        settle("bass master from the 14-bit pair", lambda s: abs(mix("bass", s)["master_db"] - want) < 0.006)
        got = db(rms(level(2)) / DC)
        check(abs(got - (want + 2.0)) < 0.01, f"14-bit CC 1/33 -> bass master {want:+.4f} dB; output {got:+.3f} dB")
        move(desk, "desk", bytes([0xE1, 0x00, 0x40]), "bass master from the pitch bend",
             lambda s: abs(mix("bass", s)["master_db"] - 60 * np.log10(8192 / 16383)) < 0.006)
        want = 60 * np.log10(8192 / 16383)
        got = db(rms(level(2)) / DC)
        check(abs(got - (want + 2.0)) < 0.01, f"pitch bend 8192 on channel 2 (audio taper) -> bass {want:+.3f} dB; output {got:+.3f} dB")

        # --- more me, talkback (with its mic), dim, scene (note and program change) -------------------
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
        settle("talkback on", lambda s: layers("drums", s)["talkback"])
        time.sleep(0.3)
        want = db((DC * 10 ** (-15 / 20) + TALK) * np.sqrt(0.5) / HALF)
        got = db(rms(level(0)) / HALF)
        check(abs(got - want) < 0.01,
              f"talkback held: drums' mix ducked by 15 dB and the talkback mic opened at 0 dB ({got:+.3f}, want {want:+.3f})")
        deliver(desk, "desk", note_off(62))
        settle("talkback off", lambda s: not layers("drums", s)["talkback"])
        time.sleep(0.3)
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "talkback released: the mic closed again")
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
        move(desk, "desk", cc(7, 64), "drums moved", lambda s: mix("drums", s)["master_db"] != 0)
        deliver(desk, "desk", bytes([0xC0, 5]))
        settle("scene verse recalled by Program Change 5", lambda s: mix("drums", s)["master_db"] == 0)
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "Program Change 5 recalls scene 'verse' too")

        # --- the bound pad: only bass, never a ceiling ---------------------------------------------
        ceilings = {m["id"]: m["ceiling_db_spl"] for m in d.status()["musicians"]}
        before = d.status()
        move(pad, "pad", cc(7, 127), "bass master from the pad", lambda s: mix("bass", s)["master_db"] == 0)
        check(mix("drums")["master_db"] == mix("drums", before)["master_db"], "the pad moved bass' master only")
        move(desk, "desk", cc(7, 100), "drums from the desk", lambda s: abs(mix("drums", s)["master_db"] - db_curve(100)) < 0.006)
        deliver(pad, "pad", note_on(2), note_off(2))  # its scene recall: bass' part of 'verse' only
        s = settle("bass back to the scene", lambda s: mix("bass", s)["master_db"] == verse_bass)
        check(abs(mix("drums", s)["master_db"] - db_curve(100)) < 0.006,
              "the pad's scene recall left drums alone (SPEC §3.5: only its musician's part)")
        drums_db = db(rms(level(0)) / HALF)
        bass_db = db(rms(level(2)) / DC)
        # Its talkback and dim: global actions, narrowed to bass. Were scope broken, drums would move.
        deliver(pad, "pad", note_on(3))
        settle("pad talkback", lambda s: layers("bass", s)["talkback"])
        time.sleep(0.2)
        got_d, got_b = db(rms(level(0)) / HALF), db(rms(level(2)) / DC)
        check(abs(got_d - drums_db) < 0.01 and abs(got_b - (bass_db - 20)) < 0.01,
              f"the pad's talkback ducked bass by 20 dB ({got_b - bass_db:+.3f}) and left drums alone ({got_d - drums_db:+.3f})")
        deliver(pad, "pad", note_off(3))
        deliver(pad, "pad", note_on(4), note_off(4))
        settle("pad dim", lambda s: layers("bass", s)["dim_db"] == -20)
        got_d, got_b = db(rms(level(0)) / HALF), db(rms(level(2)) / DC)
        check(abs(got_d - drums_db) < 0.01 and abs(got_b - (bass_db - 20)) < 0.01 and d.status()["mixer"]["dim_db"] is None,
              "the pad's dim dimmed bass only (not everyone's dim)")
        deliver(pad, "pad", note_on(4), note_off(4))
        settle("pad dim off", lambda s: layers("bass", s)["dim_db"] is None)
        # Its panic (a pad: toggle, latched) silences bass only; status and its LED show it.
        deliver(pad, "pad", note_on(1), note_off(1))
        s = settle("pad panic", lambda s: layers("bass", s)["panic"])
        time.sleep(0.2)
        y_b, y_d = level(2), level(0)
        check(rms(y_b) == 0 and abs(db(rms(y_d) / HALF) - drums_db) < 0.01,
              "the pad's panic silenced bass only; drums play on")
        check(s["mixer"]["panic"] is False and s["mixer"]["panic_musicians"] == ["bass"]
              and layers("bass", s)["own_panic"] == "pad" and not layers("drums", s)["panic"],
              "status shows why bass is silent: mixer.panic_musicians [bass], layers.own_panic 'pad'")
        wait_for(lambda: padleds.notes(1) and padleds.notes(1)[-1] == 4, 3, "the pad's panic LED to blink red")
        check(True, "the pad's panic LED blinks red (note 1 velocity 4)")
        time.sleep(0.5)
        check(rms(level(2)) == 0, "a latched panic stays on after the pad is released")
        rc, out_, _ = cli("panic", "off")
        check(rc == 0 and "bass" in out_, f"earshot panic off releases the pad's panic too: {out_.strip()}")
        s = settle("pad panic released", lambda s: not layers("bass", s)["panic"] and not s["mixer"]["panic_musicians"])
        time.sleep(0.3)
        got_b = db(rms(level(2)) / DC)
        check(abs(got_b - bass_db) < 0.01, f"bass plays again at its level ({got_b:+.3f} dB)")
        wait_for(lambda: padleds.notes(1)[-1] == 0, 3, "the pad's panic LED off")
        check(True, "and its panic LED went off")
        # Its learn button without a target of its own: the last `earshot set` target is drums'.
        rc, _, _ = cli("set", "drums", "master", "-3")
        check(rc == 0, "earshot set drums master -3 (the last target touched: drums.master)")
        deliver(pad, "pad", note_on(5), note_off(5))
        wait_for(lambda: ctl("pad")["learn_refused"] == 1, 3, "the pad's learn to be refused")
        deliver(pad, "pad", cc(22, 90), cc(22, 100))
        time.sleep(0.8)
        s = d.status()
        check(ctl("pad", s)["learned"] == 0 and s["midi"]["learning"] is None and mix("drums", s)["master_db"] == -3
              and ctl("pad", s)["scope_rejected"] == 0,
              "the pad's learn button cannot bind drums.master (learn_refused 1, scope_rejected 0, drums unchanged)")
        check({m["id"]: m["ceiling_db_spl"] for m in s["musicians"]} == ceilings, "no ceiling moved")

        # A flood of random bytes, SysEx, running status and cut messages from the bound pad.
        move(desk, "desk", cc(7, 100), "drums from the desk", lambda s: abs(mix("drums", s)["master_db"] - db_curve(100)) < 0.006)
        drums_before = mix("drums")
        others_before = {m: d.musician(m)["mix"] for m in ("vox", "loud", "mon")}
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
            elif k < 0.85:
                junk.append(bytes([0xF0, 1, 2]))  # cut SysEx
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
                         f"decoder errors {p['decoder_errors']}, queue drops {p['queue_drops']}, wake-ups {p['wakeups']}")
        check(p["decoder_errors"] > 0, "garbage and cut messages are counted, not trusted")
        check(p["wakeups"] < p["events"], "the callback signalled the control thread less often than once per event")
        check(mix("drums", s) == drums_before and all(d.musician(m, s)["mix"] == v for m, v in others_before.items()),
              "the bound pad's flood changed no other musician's mix")
        check({m["id"]: m["ceiling_db_spl"] for m in s["musicians"]} == ceilings, "nor any ceiling")
        check(p["scope_rejected"] == 0, "and nothing out of scope was even attempted (scope_rejected 0)")
        check(abs(db(rms(level(0)) / HALF) - db_curve(100)) < 0.01 and not layers("drums", s)["panic"]
              and layers("drums", s)["dim_db"] is None and not layers("drums", s)["talkback"],
              "drums still play at the desk's level, no layer of theirs touched")
        pad.per_cycle = 64
        # The pad still works: its layers back off, then its fader moves bass by the mapped amount.
        cli("panic", "off")
        if layers("bass")["dim_db"] is not None:
            deliver(pad, "pad", note_on(4), note_off(4))
        deliver(pad, "pad", note_off(3))
        settle("bass' layers off", lambda s: not layers("bass", s)["panic"] and layers("bass", s)["dim_db"] is None
               and not layers("bass", s)["talkback"])
        move(pad, "pad", cc(7, 64), "the pad's fader after the flood", lambda s: abs(mix("bass", s)["master_db"] - db_curve(64)) < 0.006)
        tone = mix("bass")["sends"]["tone"]["gain_db"]
        got_b = db(rms(level(2)) / DC)
        check(abs(got_b - (db_curve(64) + tone)) < 0.01, f"after the flood the pad still works: bass {got_b:+.3f} dB "
                                                         f"(master {db_curve(64):+.3f}, tone {tone:+.3f})")

        # --- dose LEDs: green, amber, red as vox's dose grows; a warning blinks -------------------------
        wait_for(lambda: 3 in leds.notes(40), 30, "the dose LED to turn red", interval=0.2)
        seq = [v for i, v in enumerate(leds.notes(40)) if v != 0 and (i == 0 or v != leds.notes(40)[i - 1])]
        check(len(seq) >= 3 and seq[0] == 1 and 5 in seq and seq.index(5) < seq.index(3) and seq[-1] == 3,
              f"vox's dose LED (note 40): {seq} = green, amber, red at 0.001 % and 0.1 % (amber required)")
        wait_for(lambda: 4 in leds.notes(42), 30, "loud's dose LED to blink red (RS2 warning)", interval=0.2)
        check("momentary_rs2" in json.dumps(d.musician("loud")["warnings"]),
              "loud's LAeq,1s over RS2: a warning event, and its dose LED (note 42) blinks red (velocity 4)")

        # --- hot-plug: the desk disappears and returns ---------------------------------------------
        leds_before = len(leds.events)  # (clock-driven: JACK refuses to activate a client in freewheel)
        r0 = ctl("desk")["reconnects"]
        desk.close()
        rig.players.remove(desk)
        wait_for(lambda: ctl("desk")["state"] == "waiting", 5, "earshotd to notice the desk is gone")
        check(d.alive(), "the desk's port disappeared: earshotd waits for it")
        desk = MidiSender(rig, "desk")
        wait_for(lambda: ctl("desk")["state"] == "open", 5, "the desk to be reopened")
        check(ctl("desk")["reconnects"] == r0 + 1, "the desk came back and was reopened (reconnects +1), no restart")
        wait_for(lambda: len(leds.events) > leds_before, 3, "LEDs resent after the replug")
        check(leds.notes(60)[-1] == 0, "its LEDs were resent (resync)")
        move(desk, "desk", cc(7, 127), "control resumed", lambda s: mix("drums", s)["master_db"] == 0)
        check(abs(db(rms(level(0)) / HALF)) < 0.01, "control resumes: CC 7 = 127 -> drums at 0 dB")
        # ... and within 50 ms (faster than any poll): JACK drops the connection with the port.
        r0 = ctl("desk")["reconnects"]
        t = time.monotonic()
        desk.close()
        rig.players.remove(desk)
        time.sleep(0.05)
        desk = MidiSender(rig, "desk")
        s = wait_for(lambda: (lambda s: s if ctl("desk", s)["reconnects"] == r0 + 1 and ctl("desk", s)["connected"] else None)(d.status()),
                     3, "the desk to be reconnected after a 50 ms replug")
        dt = time.monotonic() - t
        check(ctl("desk", s)["state"] == "open" and f"earshot-desk-{d.p.pid}:in" in rig.connections(desk.full_name()),
              f"a 50 ms replug: reopened and connected again {dt:.2f} s after the unplug")
        move(desk, "desk", cc(7, 64), "control after the fast replug", lambda s: abs(mix("drums", s)["master_db"] - db_curve(64)) < 0.006)
        check(True, "control resumes after the 50 ms replug")
        # The LED port: replugged within 50 ms, the LEDs are resent to it.
        f0 = ctl("desk")["feedback_reconnects"]
        leds.close()
        rig.players.remove(leds)
        time.sleep(0.05)
        leds = MidiCapture(rig, "leds")
        wait_for(lambda: leds.notes(60) and leds.notes(40), 3, "the LEDs on the replugged LED port")
        s = d.status()
        check(ctl("desk", s)["feedback_port"] == f"{leds.name}:in" and leds.notes(60)[-1] == 0 and leds.notes(40)[-1] == 3,
              f"the LED port replugged within 50 ms: feedback reconnected (feedback_reconnects {ctl('desk', s)['feedback_reconnects'] - f0:+d}) "
              "and every LED resent")

        # --- MIDI learn ---------------------------------------------------------------------------
        proc = subprocess.Popen([earshot, "learn", "drums.send.tone"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: d.status()["midi"]["learning"] == "drums.send.tone", 5, "learn to start")
        deliver(desk, "desk", cc(21, 100))
        out_, err_ = proc.communicate(timeout=15)
        check(proc.returncode == 0 and "drums.send.tone" in out_ and "cc 21" in out_,
              f"earshot learn drums.send.tone + CC 21 moved: {out_.strip()}")
        learned = json.load(open(os.path.join(state_dir, "midi-learn.json")))
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
        # A relative encoder, turned down then up while learning: its encoding is recognised. (The
        # values go out in one cycle, in freewheel: no xrun can drop them.)
        move(pad, "pad", cc(8, 100), "bass tone below 0 dB", lambda s: abs(mix("bass", s)["sends"]["tone"]["gain_db"] - db_curve(100)) < 0.006)
        proc = subprocess.Popen([earshot, "learn", "--json", "bass.send.tone"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: d.status()["midi"]["learning"] == "bass.send.tone", 5, "learn to start")
        hold_freewheel(True)
        desk.send(cc(23, 127), cc(23, 127), cc(23, 1), cc(23, 1))
        out_, err_ = proc.communicate(timeout=15)
        hold_freewheel(False)
        check(proc.returncode == 0 and json.loads(out_)["result"]["kind"] == "relative_twos_complement",
              f"earshot learn bass.send.tone + an encoder turned both ways: {out_.strip()}")
        tone = mix("bass")["sends"]["tone"]["gain_db"]
        deliver(desk, "desk", cc(23, 1), cc(23, 1))
        settle("the learned encoder", lambda s: abs(mix("bass", s)["sends"]["tone"]["gain_db"] - (tone + 1.0)) < 0.006)
        check(True, f"the learned encoder steps bass' tone send by 0.5 dB ({tone:+.2f} -> {tone + 1:+.2f}), no jump")
        # An encoder turned one way only (1, 1, 1): two encodings agree, so it is refused, explained.
        proc = subprocess.Popen([earshot, "learn", "bass.master"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: d.status()["midi"]["learning"] == "bass.master", 5, "learn to start")
        hold_freewheel(True)
        desk.send(cc(24, 1), cc(24, 1), cc(24, 1))
        out_, err_ = proc.communicate(timeout=15)
        hold_freewheel(False)
        check(proc.returncode == 1 and "relative encoder" in err_ and "both ways" in err_,
              f"an ambiguous encoder is refused: {err_.strip()}")
        # From the pad's learn button: its target is drums.master; a fader moved through values.
        deliver(desk, "desk", note_on(5), note_off(5))
        wait_for(lambda: d.status()["midi"]["learning"] == "drums.master", 5, "learn from the pad")
        hold_freewheel(True)
        desk.send(cc(22, 90), cc(22, 100), cc(22, 110))
        wait_for(lambda: d.status()["midi"]["learning"] is None, 5, "the pad's learn to finish")
        hold_freewheel(False)
        move(desk, "desk", cc(22, 64), "learned CC 22", lambda s: abs(mix("drums", s)["master_db"] - db_curve(64)) < 0.006)
        check(True, "learn button held + CC 22 moved: CC 22 now drives drums' master")
        move(desk, "desk", cc(22, 127), "drums master back to 0 dB", lambda s: mix("drums", s)["master_db"] == 0)

        s = d.status()
        for cid in ("desk", "pad"):
            c = ctl(cid, s)
            check(c["scope_rejected"] == 0, f"{cid}: scope_rejected 0, {c['events']} events, {c['actions']} actions")

        # --- the learned bindings survive a restart; --forget removes one -------------------------
        check(d.stop() == 0, "SIGTERM: exit 0")
        d = rig.start_daemon(path)
        d.wait_connected()
        wait_for(lambda: opened(d.status()), 10, "the controllers to open after the restart")
        check(ctl("desk")["learned"] == 3, "after a restart: 3 learned bindings on the desk")
        move(desk, "desk", cc(21, 64), "learned CC 21 after a restart",
             lambda s: abs(mix("drums", s)["sends"]["tone"]["gain_db"] - db_curve(64)) < 0.006)
        got = db(rms(level(0)) / HALF)
        want = mix("drums")["master_db"] + db_curve(64)
        check(abs(got - want) < 0.01, f"the learned CC 21 drives drums' tone after the restart (output {got:+.3f} dB)")
        rc, out_, _ = cli("learn", "--forget", "drums.send.tone")
        check(rc == 0 and "forgotten" in out_, f"earshot learn --forget drums.send.tone: {out_.strip()}")
        learned = json.load(open(os.path.join(state_dir, "midi-learn.json")))
        settle("2 learned bindings", lambda s: ctl("desk", s)["learned"] == 2)
        check(all(b["target"] != "drums.send.tone" for b in learned["controllers"]["desk"])
              and len(learned["controllers"]["desk"]) == 2, "the binding left midi-learn.json (2 left)")
        deliver(desk, "desk", cc(21, 127))
        time.sleep(0.3)
        check(abs(mix("drums")["sends"]["tone"]["gain_db"] - db_curve(64)) < 0.006, "CC 21 no longer moves drums' tone")
        rc, _, err_ = cli("learn", "--forget", "drums.send.tone")
        check(rc == 1 and "no learned binding" in err_, f"forgetting it again: {err_.strip()}")
        check(d.stop() == 0, "SIGTERM: exit 0")


if __name__ == "__main__":
    main_wrapper(run)
