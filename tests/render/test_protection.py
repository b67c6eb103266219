#!/usr/bin/python3
"""The loudness cap (protection.max_laeq_1s_dba) through `earshot render` (issue 7, SPEC §3), and
the dose guard.

The cap: every sliding 1 s A-weighted window of the written WAV that is clear of the first second
of an onset, and every per-second dose interval of the report after the onset's own, stays at or
below cap + 0.5 dB, for steps, ramps of 3..40 dB/s (up and down), bursts, tones 50 Hz..12 kHz,
pink noise and the generated band (`earshot generate`), at 44.1/48/96/192 kHz, `reference: field`
and `eardrum`. The windows are judged independently of the engine: the WAV's spectrum weighted by
the IEC 61672-1 analog A-weighting (zero phase), 1 ms steps. Onsets (docs/protection.md) come
from the same render without the cap. No pumping: below the cap the output is bit-identical to
the render without a cap; a steady tone over the cap settles to a constant gain (output / input
within 0.1 dB after 2 s); on the band the gain (output / the render without a cap) is judged
against what the band's own 1 s windows need. Two capped musicians (the engine runs their caps in
lockstep) write exactly what each writes alone. The ceiling still holds after the cap.

usage: test_protection.py EARSHOT_EXE
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

EXE = os.path.abspath(sys.argv[1])
FS = 48000
OFFSET = 94 + 20 + 3.010299956639812  # calibration: -20 dBFS peak sine = 94 dB SPL
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def write_float_wav(path, data, rate=FS):
    data = np.asarray(data, dtype="<f4")
    if data.ndim == 1:
        data = data[:, None]
    ch = data.shape[1]
    body = data.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, ch, rate, rate * ch * 4, ch * 4, 32, 0)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4)
    riff += struct.pack("<I", data.shape[0]) + b"data" + struct.pack("<I", len(body)) + body
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(riff)) + riff)


def read_float_wav(path):
    raw = open(path, "rb").read()
    pos = 12
    ch = 1
    while pos < len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            ch = struct.unpack("<H", raw[pos + 10:pos + 12])[0]
        if cid == b"data":
            return np.frombuffer(raw[pos + 8:pos + 8 + size], dtype="<f4").reshape(-1, ch)
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def config(cap, ceiling=125, master=0, extra=""):
    cap_line = f", max_laeq_1s_dba: {cap}" if cap is not None else ""
    return f"""version: 1
{extra}inputs:
  - id: src
musicians:
  - id: m
    output: stereo
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: {ceiling}{cap_line} }}
    mix:
      master_db: {master}
      sends:
        src: {{ gain_db: 3.0103 }}
"""


def render(tmp, name, signal, cap, rate=FS, **kw):
    cfg = os.path.join(tmp, name + ".yaml")
    open(cfg, "w").write(config(cap, **kw))
    wav = os.path.join(tmp, name + ".wav")
    write_float_wav(wav, signal, rate)
    out = os.path.join(tmp, name)
    subprocess.run([EXE, "render", "--config", cfg, "--input", wav, "--out-dir", out, "--per-second", "--quiet"],
                   check=True)
    rep = json.load(open(os.path.join(out, "report.json")))["musicians"][0]
    return rep, read_float_wav(os.path.join(out, "m.wav"))


def tone(freq, dba_at_ear, seconds, onset=0.0, rate=FS):
    # Centre pan + the send's +3.01 dB: each ear hears the input's level. A sine of peak P dBFS is
    # P - 3.01 + OFFSET dB SPL RMS.
    peak_dbfs = dba_at_ear - OFFSET + 3.0103
    t = np.arange(int(seconds * rate), dtype=np.float32) / np.float32(rate)
    x = np.float32(10 ** (peak_dbfs / 20)) * np.sin(np.float32(2 * np.pi * freq) * t)
    x[: int(onset * rate)] = 0
    return x


def music(dba_at_ear, seconds, seed=1):
    """Drum-like hits, a bass line and noise bursts: loud, with 1 s levels that swing."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    x = np.zeros(n)
    beat = (t * 2.0) % 1.0  # 120 bpm
    x += np.exp(-beat * 25) * np.sin(2 * np.pi * 55 * t * (1 + np.exp(-beat * 30)))  # kick
    x += 0.6 * np.sin(2 * np.pi * (82.4 * (1 + (np.floor(t) % 4) / 4)) * t)         # bass
    burst = ((t * 4) % 1.0) < 0.1
    x += 0.5 * rng.standard_normal(n) * burst                                         # hats
    x *= 1 + 0.5 * np.sin(2 * np.pi * t / 7)                                          # swells
    # Scale to the wanted A-weighted-ish level roughly (the check uses the meter anyway).
    x /= np.sqrt(np.mean(x ** 2))
    return x * 10 ** ((dba_at_ear - OFFSET) / 20)


GUARD_RATE = 1.0 / 30  # dB/s: the default guard_rate_db_per_min of 2


def guard_tone(levels_dba, rate):
    """A 1 kHz tone at `rate` (a multiple of 8 kHz), one level per second (None = silence), built
    from one exact period so that its level does not drift over hours (a float32 time axis does:
    beyond 2^24 samples the phase steps and the A-weighted level falls by up to 6 dB)."""
    per = np.sin(2 * np.pi * np.arange(rate // 1000) / (rate // 1000))
    reps = 1000
    out = np.empty(len(levels_dba) * rate, dtype=np.float32)
    for i, lv in enumerate(levels_dba):
        peak_dbfs = lv - OFFSET + 3.0103 if lv is not None else None
        a = 0.0 if peak_dbfs is None else 10 ** (peak_dbfs / 20)
        out[i * rate:(i + 1) * rate] = np.tile(per * a, reps)
    return out


def wav_level_at(path, seconds, rate):
    """The 1 s level (dB SPL at the ear: A-weighting is 0 dB at 1 kHz) of the left channel of a
    float WAV at the given seconds, read through a memory map (the file is hours long)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    pos, ch = 12, 1
    while pos < len(raw):
        cid = bytes(raw[pos:pos + 4])
        size = int(np.frombuffer(bytes(raw[pos + 4:pos + 8]), dtype="<u4")[0])
        if cid == b"fmt ":
            ch = int(np.frombuffer(bytes(raw[pos + 10:pos + 12]), dtype="<u2")[0])
        if cid == b"data":
            data = np.frombuffer(raw[pos + 8:pos + 8 + size], dtype="<f4").reshape(-1, ch)
            return [20 * np.log10(np.sqrt(np.mean(data[t * rate:(t + 1) * rate, 0].astype(np.float64) ** 2)) + 1e-30)
                    + OFFSET for t in seconds]
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def guard_show(tmp, name, levels, rate=8000):
    """Renders a show (one level per second) with `guard: limit` (1 dB per 30 s, 12 dB deep) and
    returns (report, per-second guard attenuation, per-second NIOSH %, path of the output WAV)."""
    cfg = os.path.join(tmp, name + ".yaml")
    open(cfg, "w").write(config(None, extra="dosimetry: { guard: limit }\n"))
    wav = os.path.join(tmp, name + ".wav")
    write_float_wav(wav, guard_tone(levels, rate), rate)
    out = os.path.join(tmp, name)
    subprocess.run([EXE, "render", "--config", cfg, "--input", wav, "--out-dir", out, "--per-second", "--quiet"],
                   check=True)
    rep = json.load(open(os.path.join(out, "report.json")))["musicians"][0]
    ps = rep["per_second"]
    return rep, np.array(ps["guard_db"]), np.array(ps["niosh_pct"]), os.path.join(tmp, name, "m.wav")


def reversals(g):
    d = np.diff(g)
    d = d[np.abs(d) > 1e-5]
    return int(np.sum(np.sign(d[1:]) != np.sign(d[:-1])))


def guard_checks(tmp):
    """The dose guard (dosimetry.guard: limit) through `earshot render`: 3-hour shows end at or below
    100 % NIOSH and within 2 % of it, and the engine's guard gain never moves faster than the rate."""
    rate = 8000  # the 3-hour files are 8 kHz to keep them small (345 MB of input)
    hours = 3
    n = hours * 3600
    # a. 3 hours at a steady 100 dBA (NIOSH 100 % after 15 min unguarded).
    rep, g, dose, wav = guard_show(tmp, "guard", [100.0] * n, rate)
    final = dose[-1]
    check(final <= 100.0, f"3 h at 100 dBA with guard: limit ends at {final:.2f} % NIOSH (at or below 100 %)")
    check(final >= 98.0, f"and within 2 % of it: it uses the budget rather than silencing the show ({final:.2f} %)")
    # The rate, from the engine's own guard gain at the end of every second (report.json,
    # per_second.guard_db, 1e-6 dB resolution): never faster than 1 dB per 30 s, and it did move at
    # that rate (so the check can fail).
    steps = np.abs(np.diff(g))
    check(steps.max() <= GUARD_RATE + 2e-6,
          f"the engine's guard gain never moves faster than 1 dB per 30 s (fastest {steps.max() * 30:.5f} dB per 30 s)")
    check(steps.max() >= 0.999 * GUARD_RATE, f"it moved at the rate while it ramped ({steps.max() * 30:.5f} dB per 30 s)")
    check(g.max() <= 12.0 + 1e-6 and g.max() > 10.5, f"it went {g.max():.3f} dB deep (depth 12 dB)")
    check(reversals(g) <= 1, f"it ramped once and held (direction changes: {reversals(g)})")
    check(abs(rep["guard"]["max_attenuation_db"] - g.max()) < 2e-3,
          f"report.json's guard.max_attenuation_db agrees ({rep['guard']['max_attenuation_db']} dB)")
    # Independently, from the written audio: each second's level is 100 dBA less the reported
    # attenuation (within the 1/30 dB the gain moves in a second, and the meter's 0.05 dB at 8 kHz).
    secs = [5, 60, 200, 340, 1000, 3600, 7200, n - 200, n - 2]
    lv = wav_level_at(wav, secs, rate)
    worst = max(abs(lv[i] - (100.0 - g[t])) for i, t in enumerate(secs))
    check(worst < 0.06, f"the written WAV agrees: level = 100 dBA - attenuation within {worst:.3f} dB")
    unguarded = 100.0 * hours * 3600 / (8 * 3600 / 2 ** ((100 - 85) / 3))
    print(f"     (unguarded the same show would be {unguarded:.0f} % NIOSH)")
    os.remove(os.path.join(tmp, "guard.wav"))
    os.remove(wav)

    # b. Songs and breaks: 4 min at 100 dBA, 1 min at 75 dBA, for 3 hours. The first guard planned
    #    from the last minute and let go in every break (71 changes of direction, 36 over-budget
    #    warnings); this one holds through the breaks.
    levels = [100.0 if t % 300 < 240 else 75.0 for t in range(n)]
    rep, g, dose, wav = guard_show(tmp, "songs", levels, rate)
    final = dose[-1]
    check(final <= 100.0 and final >= 96.0,
          f"3 h of 4 min songs at 100 dBA and 1 min breaks ends at {final:.2f} % NIOSH (at or below 100 %)")
    steps = np.abs(np.diff(g))
    check(steps.max() <= GUARD_RATE + 2e-6, f"never faster than 1 dB per 30 s ({steps.max() * 30:.5f})")
    check(reversals(g) <= 3, f"it holds through the breaks: {reversals(g)} changes of direction in 3 h")
    os.remove(os.path.join(tmp, "songs.wav"))
    os.remove(wav)


def cfg_text(cap, ceiling=140, ref="field", musicians=("m",), inputs=("src",), sends=None):
    """A config with one stereo musician per id, each hearing `sends` (default: src centred at
    +3.01 dB, so each ear hears the input's level)."""
    cap_line = f", max_laeq_1s_dba: {cap}" if cap is not None else ""
    if sends is None:
        sends = "src: { gain_db: 3.0103 }"
    text = "version: 1\ninputs:\n" + "".join(f"  - id: {i}\n" for i in inputs) + "musicians:\n"
    for m in musicians:
        text += f"""  - id: {m}
    output: stereo
    calibration: {{ sine_dbfs: -20, db_spl: 94, reference: {ref} }}
    protection: {{ peak_ceiling_db_spl: {ceiling}{cap_line} }}
    mix:
      sends:
        {sends}
"""
    return text


def render_cfg(tmp, name, signal, text, rate=FS, block=None):
    """Renders `signal` (frames x channels, or mono) with a config text; returns the report and the
    written WAV of every musician."""
    cfg = os.path.join(tmp, name + ".yaml")
    open(cfg, "w").write(text)
    wav = os.path.join(tmp, name + ".wav")
    write_float_wav(wav, signal, rate)
    out = os.path.join(tmp, name)
    cmd = [EXE, "render", "--config", cfg, "--input", wav, "--out-dir", out, "--per-second", "--quiet"]
    if block:
        cmd += ["--block", str(block)]
    subprocess.run(cmd, check=True)
    os.remove(wav)
    rep = json.load(open(os.path.join(out, "report.json")))
    wavs = {m["id"]: read_float_wav(os.path.join(out, m["id"] + ".wav")) for m in rep["musicians"]}
    return rep, wavs


def a_weight(y, rate):
    """The A-weighted signal: the spectrum times IEC 61672-1's analog A-weighting (zero phase)."""
    n = y.shape[0]
    f = np.fft.rfftfreq(n, 1.0 / rate)
    f2 = f * f
    ra = (12194.0 ** 2 * f2 * f2) / ((f2 + 20.598997 ** 2) * np.sqrt((f2 + 107.65265 ** 2) * (f2 + 737.86223 ** 2))
                                     * (f2 + 12194.217 ** 2))
    ra *= 10 ** (2.0 / 20)
    return np.fft.irfft(np.fft.rfft(y.astype(np.float64), axis=0) * ra[:, None], n, axis=0)


def blocks_a(y, rate, blk):
    """A-weighted energy per block and ear (louder ear taken later), as mean squares x samples."""
    a = a_weight(y, rate)
    m = (len(a) // blk) * blk
    return (a[:m] ** 2).reshape(-1, blk, a.shape[1]).sum(1)


def onsets_of(x_at_ear, rate, cap):
    """Onsets (s, docs/protection.md) of the signal at the ear (the render without a cap): 10 ms
    segments from t = 0, louder ear; a crossing is a segment over the cap after a second without
    one, a jump one 8 dB over every segment of the second before (or 8 dB over all but the
    previous one, that one 3 dB over them; or 10 dB over the cap and 6 dB over them)."""
    seg = int(round(rate / 100))
    e = blocks_a(x_at_ear, rate, seg)
    m = 10 * np.log10(np.maximum(e.max(1) / seg, 1e-300)) + OFFSET - cap
    ons = []
    for k in range(len(m)):
        prev = m[max(0, k - 100):k]
        mp = prev.max() if len(prev) else -400.0
        ref = m[max(0, k - 100):k - 1].max() if k >= 2 else -400.0
        m1 = m[k - 1] if k else -400.0
        jump = m[k] > mp + 8 or (m1 > ref + 3 and m[k] > ref + 8) or (m[k] > 10 and m[k] > mp + 6)
        if m[k] > 0 and (mp <= 0 or jump):
            ons.append(k * seg / rate)
    return ons


def judge(y, x_at_ear, rate, cap, rep=None, first_of=None):
    """Worst sliding 1 s window (1 ms steps, WAV, A-weighted) clear of every onset's first second
    and after the first onset; worst per-second dose interval (report) after the first onset's,
    holding no onset; and the worst window overlapping a first second."""
    ons = onsets_of(x_at_ear, rate, cap) if first_of is None else first_of
    blk = rate // 1000 if rate % 1000 == 0 else rate // 300
    per_s = rate // blk
    e = blocks_a(y, rate, blk)
    c = np.cumsum(np.vstack([np.zeros((1, e.shape[1])), e]), 0)
    w = (c[per_s:] - c[:-per_s]).max(1) / rate
    lv = 10 * np.log10(np.maximum(w, 1e-300)) + OFFSET - cap
    st = np.arange(len(lv)) * blk / rate
    ok = st >= (ons[0] if ons else 0.0) - 1e-9
    first = np.zeros(len(lv), bool)
    for o in ons:
        first |= (st + 1.0 > o + 1e-9) & (st < o + 1.0 - 1e-9)
    sliding = float(lv[ok & ~first].max()) if (ok & ~first).any() else float("-inf")
    first_worst = float(lv[first].max()) if first.any() else float("-inf")
    dose = float("-inf")
    if rep is not None:
        la = rep["per_second"]["laeq_dba"]
        for j, v in enumerate(la[:-1]):  # the last second may be short
            if v is None or not ons or j + 1 <= ons[0] + 1e-9:
                continue
            if any(j - 1e-9 <= o < j + 1 - 1e-9 for o in ons):
                continue
            dose = max(dose, v - cap)
    return sliding, dose, first_worst, ons


def pink(n, rate, seed):
    """Pink noise (1/f spectrum, 20 Hz..20 kHz), unit RMS."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    f[0] = f[1]
    spec /= np.sqrt(f)
    spec[(f < 20) | (f > 20000)] = 0
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x ** 2))


def at_level(x, rate, dba_at_ear):
    """x scaled so that its A-weighted level at each ear (centre pan, +3.01 dB send) is dba_at_ear."""
    la = 10 * np.log10(np.mean(a_weight(x[:, None], rate)[: min(len(x), 2 * rate)] ** 2)) + OFFSET
    return x * 10 ** ((dba_at_ear - la) / 20)


def envelope(n, rate, fn):
    t = np.arange(n) / rate
    return 10 ** (fn(t) / 20)


def gain_db_per_seg(y, x, rate):
    """The cap's gain per 10 ms (both ears, unweighted): output / the render without the cap."""
    seg = int(round(rate / 100))
    m = (min(len(y), len(x)) // seg) * seg
    eo = (y[:m].astype(np.float64) ** 2).sum(1).reshape(-1, seg).sum(1)
    ei = (x[:m].astype(np.float64) ** 2).sum(1).reshape(-1, seg).sum(1)
    return 10 * np.log10(np.maximum(eo, 1e-300) / np.maximum(ei, 1e-300))


def generated_band(tmp, seconds, rate, seed=3):
    path = os.path.join(tmp, f"band{seed}_{rate}.wav")
    subprocess.run([EXE, "generate", "--out", path, "--seconds", str(seconds), "--rate", str(rate),
                    "--seed", str(seed)], check=True)
    x = read_float_wav(path).astype(np.float64)
    os.remove(path)
    return x


BAND_INPUTS = ("click", "drums", "bass", "vocal")
BAND_SENDS = ("click: { gain_db: -3 }\n        drums: { gain_db: -6 }\n        bass: { gain_db: -4, pan: -0.4 }\n"
              "        vocal: { gain_db: -6, pan: 0.3 }")


def cap_checks(tmp):
    cap = 95.0
    offsets = {}

    def held(name, x, rate=FS, ref="field", onsets=None, sliding_too=True, extra_msg=""):
        """Renders x with and without the cap; checks the windows and the dose seconds."""
        rep0, w0 = render_cfg(tmp, name + "-nocap", x, cfg_text(None, ref=ref), rate)
        rep, w = render_cfg(tmp, name, x, cfg_text(cap, ref=ref), rate)
        m = rep["musicians"][0]
        sl, dose, first, ons = judge(w["m"], w0["m"], rate, cap, m, onsets)
        if sliding_too:
            check(sl <= 0.5, f"{name}: every sliding window clear of an onset's first second <= cap + 0.5 dB "
                             f"({sl:+.2f} dB; onsets {[round(o, 2) for o in ons[:4]]}){extra_msg}")
        check(dose <= 0.5, f"{name}: every dose second after the onset's own <= cap + 0.5 dB ({dose:+.2f} dB)")
        return m, w["m"], w0["m"], first

    # 1. A loud steady tone (20 dB over the cap) starting after 0.5 s, at three frequencies; the
    #    dose seconds from the one after the onset's own (the second [1, 2] included).
    for f in (100.0, 1000.0, 4000.0):
        rep, y = render(tmp, f"tone{int(f)}", tone(f, cap + 20, 12, onset=0.5), cap)
        la = rep["per_second"]["laeq_dba"]
        worst = max(v for v in la[1:] if v is not None)
        check(worst <= cap + 0.5, f"{f:.0f} Hz at cap + 20 dB from 0.5 s: worst 1 s LAeq from the second [1, 2] on "
                                  f"{worst:.2f} dBA (cap {cap})")
        if f == 1000.0:
            # Independent: A-weighting is 0 dB at 1 kHz, so each second's RMS is its LAeq.
            lvl = [20 * np.log10(np.sqrt(np.mean(y[i * FS:(i + 1) * FS, 0].astype(np.float64) ** 2)) + 1e-30)
                   + OFFSET - 3.0103 + 3.0103 for i in range(len(y) // FS)]
            worst_wav = max(lvl[1:])
            check(worst_wav <= cap + 0.5, f"1 kHz: the written WAV agrees: worst 1 s level {worst_wav:.2f} dB")
            check(abs(lvl[-1] - cap) < 0.5, f"1 kHz: and sits at the cap once settled ({lvl[-1]:.2f} dB)")
        check(rep["true_peak_db_spl"] <= 125 + 0.5 and rep["limiter"]["max_gain_reduction_db"] >= 0,
              f"{f:.0f} Hz: the ceiling still holds after the cap")

    # 2. Loud music-like material, 10 dB over the cap on average (swells, no accents).
    rep, _ = render(tmp, "music", music(cap + 10, 30), cap)
    la = rep["per_second"]["laeq_dba"]
    worst = max(v for v in la[1:] if v is not None)
    check(worst <= cap + 0.5, f"music at cap + 10 dB: worst 1 s LAeq after the first second {worst:.2f} dBA")
    check(rep["loudness_cap"]["max_gain_reduction_db"] > 5, "the cap acted on it")

    # 3. Steps from silence and from just under the cap, tones and pink noise, the step at 0.5 s or
    #    just before a dose-second boundary; 44.1 .. 192 kHz; eardrum-referenced.
    for rate in (44100, 48000, 96000, 192000):
        steps = (3, 10, 20, 40) if rate == FS else (20,)
        for kind in ("1k", "pink"):
            n = 6 * rate
            car = tone(1000.0, 0.0, 6, rate=rate).astype(np.float64) if kind == "1k" else at_level(pink(n, rate, 1), rate, 0.0)
            for base in (None, -1.0):
                for over in steps:
                    for at in ((0.5, 2.995) if rate == FS else (0.5,)):
                        env = envelope(n, rate, lambda t: np.where(t >= at, cap + over, cap + base if base else -200.0))
                        name = f"step-{kind}-{rate}-{'sil' if base is None else 'under'}-{over}-{at}"
                        x = (car * env).astype(np.float32)
                        m, y, y0, first = held(name, x, rate)
                        if base is None and over == 20 and at == 0.5:
                            print(f"     ({name}: worst window overlapping the first second {first:+.2f} dB)")
    for f in (50.0, 12000.0):
        held(f"tone-{int(f)}", tone(f, cap + 20, 6, onset=0.5) * 10 ** (-a_db_at(f) / 20))
    for ref in ("eardrum",):
        # The eardrum-referenced dose meter reads a field-equivalent level: the dose seconds
        # (the report) are the judge here; the sliding windows are judged at the DSP level.
        for f in (1000.0, 3000.0):
            x = tone(f, cap + 25, 8, onset=0.5)
            held(f"eardrum-{int(f)}", x, ref=ref, sliding_too=False)

    # 4. Ramps from -20 to +20 dB re the cap and back (the crossing is the onset), 3..40 dB/s.
    for rate, rates in ((FS, (3, 8, 10, 15, 20, 40)), (44100, (10,)), (96000, (10,)), (192000, (40,))):
        for r in rates:
            up = 40.0 / r
            T = 2.0 + 2 * up + 2.0
            n = int(T * rate)
            for kind in ("1k", "pink"):
                car = (tone(1000.0, 0.0, T, rate=rate).astype(np.float64) if kind == "1k"
                       else at_level(pink(n, rate, 2), rate, 0.0))
                env = envelope(n, rate, lambda t: cap + np.minimum(np.clip(-20 + r * (t - 1.0), -20, 20),
                                                                   np.clip(20 - r * (t - 1.0 - up), -20, 20)))
                held(f"ramp-{kind}-{rate}-{r}dBps", (car * env).astype(np.float32), rate)

    # 5. Bursts and loud/quiet alternation.
    for loud, quiet, on, off in ((20, -40, 0.05, 0.5), (20, -40, 0.5, 0.5), (30, -20, 2.0, 1.0),
                                 (20, -40, 0.2, 2.0), (10, -10, 1.0, 1.0), (6, 0, 1.5, 1.5)):
        n = 12 * FS
        car = tone(1000.0, 0.0, 12).astype(np.float64)
        env = envelope(n, FS, lambda t: np.where((t >= 1.0) & (((t - 1.0) % (on + off)) < on), cap + loud, cap + quiet))
        held(f"burst+{loud}_{quiet}-{on}on-{off}off", (car * env).astype(np.float32))

    # 6. No pumping below the cap: the output is bit-identical to the render without a cap (a tone
    #    1 dB under it; quiet music); a steady tone over the cap settles to a constant gain.
    for name, x in (("under", tone(1000.0, cap - 1, 10)), ("quiet", music(cap - 10, 20))):
        _, w0 = render_cfg(tmp, name + "-nocap", x, cfg_text(None, ceiling=125))
        rep, w = render_cfg(tmp, name, x, cfg_text(cap, ceiling=125))
        check(np.array_equal(w["m"], w0["m"]) and max(rep["musicians"][0]["per_second"]["cap_gr_db"]) == 0.0,
              f"{name}: below the cap the output is bit-identical to the render without a cap")
    for over in (3.0, 10.0, 15.0):  # (the render without a cap stays under full scale)
        x = tone(1000.0, cap + over, 8)
        _, w0 = render_cfg(tmp, f"steady{over}-nocap", x, cfg_text(None))
        _, w = render_cfg(tmp, f"steady{over}", x, cfg_text(cap))
        g = gain_db_per_seg(w["m"], w0["m"], FS)[200:-1]
        check(g.max() - g.min() <= 0.1 and abs(g.mean() + over) <= 0.15,
              f"a steady tone {over:.0f} dB over the cap: from 2 s on the gain (output / input) stays within "
              f"0.1 dB ({g.min():+.3f} .. {g.max():+.3f} dB)")

    # 7. The generated band (earshot generate, seed 3, 48 kHz, 40 s) through the demo-like mix.
    x = generated_band(tmp, 40, FS)
    band = lambda c: cfg_text(c, inputs=BAND_INPUTS, sends=BAND_SENDS)
    rep0, w0 = render_cfg(tmp, "band-nocap", x, band(None))
    ps0 = np.array([v for v in rep0["musicians"][0]["per_second"]["laeq_dba"][:-1] if v is not None])
    median = float(np.median(ps0))
    for over in (3.0, 0.0, -3.0):
        c = round(median + over, 2)
        rep, w = render_cfg(tmp, f"band{over:+.0f}", x, band(c))
        sl, dose, _, ons = judge(w["m"], w0["m"], FS, c, rep["musicians"][0])
        check(sl <= 0.5 and dose <= 0.5, f"the band with the cap {over:+.0f} dB from its median second: every window "
                                         f"clear of the start <= cap + 0.5 dB (sliding {sl:+.2f}, dose seconds {dose:+.2f})")
        g = gain_db_per_seg(w["m"], w0["m"], FS)[100:]
        # What the band needs: per 10 ms, the constant gain that holds the loudest 1 s input window
        # containing it at the cap.
        seg = FS // 100
        e = blocks_a(w0["m"], FS, seg)
        cs = np.cumsum(np.vstack([np.zeros((1, 2)), e]), 0)
        win = 10 * np.log10(np.maximum((cs[100:] - cs[:-100]).max(1) / FS, 1e-300)) + OFFSET - c
        need = np.zeros(len(e))
        for k in range(len(e)):
            need[k] = min(0.0, -win[max(0, k - 99):min(k, len(win) - 1) + 1].max())
        under = need[100:100 + len(g)] - g[: len(need) - 100]
        run = best = 0
        for v in under > 1.0:
            run = run + 1 if v else 0
            best = max(best, run)
        print(f"     (band {over:+.0f} dB: gain min {g.min():.2f} dB, std {g.std():.2f} dB, deepest under the need "
              f"{under.max():.2f} dB, longest > 1 dB under it {best / 100:.2f} s)")
        if over == 3.0:
            check(g.std() <= 1.0, f"the band, cap 3 dB over its median: the gain's standard deviation <= 1 dB "
                                  f"({g.std():.2f} dB; the previous design: 2.2 dB)")
            check(g.min() >= -5.0, f"and it never goes more than 5 dB down ({g.min():.2f} dB; before: -7.4 dB)")
            check(best <= 100, f"and never stays more than 1 dB under what the band needs for over 1 s "
                               f"({best / 100:.2f} s; before: 5-8 dB under for ~3 s)")
    # A musician pushing the band's fader up over 2 s (-20 dB to 3 dB over the cap, 11.5 dB/s).
    c = round(median, 2)
    fade = envelope(len(x), FS, lambda t: np.clip(-20 + 11.5 * (t - 1.0), -20, 3))[:, None]
    xf = (x * fade).astype(np.float32)
    _, wf0 = render_cfg(tmp, "fader-nocap", xf, band(None))
    rep, wf = render_cfg(tmp, "fader", xf, band(c))
    sl, dose, _, ons = judge(wf["m"], wf0["m"], FS, c, rep["musicians"][0])
    check(sl <= 0.5 and dose <= 0.5, f"a fader pushed up over 2 s on the band: every window 1 s after the crossing "
                                     f"<= cap + 0.5 dB (sliding {sl:+.2f}, dose seconds {dose:+.2f})")

    # 8. Two capped musicians (their caps run in lockstep in the engine) write exactly what each
    #    writes alone.
    two = cfg_text(c, musicians=("a", "b"), inputs=BAND_INPUTS, sends=BAND_SENDS)
    rep2, w2 = render_cfg(tmp, "two", x, two, block=64)
    rep1, w1 = render_cfg(tmp, "one", x, band(c), block=64)
    check(np.array_equal(w2["a"], w1["m"]) and np.array_equal(w2["b"], w1["m"]),
          "two capped musicians in lockstep: each output bit-identical to the musician rendered alone")

    # 9. No cap configured: nothing changes (the same loud tone passes at its level).
    rep, _ = render(tmp, "nocap", tone(1000.0, cap + 10, 4), None)
    check("loudness_cap" not in rep and abs(rep["laeq_dba"] - (cap + 10)) < 0.1,
          f"without max_laeq_1s_dba the level is untouched ({rep['laeq_dba']:.2f} dBA)")


def a_db_at(f):
    """IEC 61672-1 A-weighting at f, dB."""
    f2 = f * f
    ra = (12194.0 ** 2 * f2 * f2) / ((f2 + 20.598997 ** 2) * np.sqrt((f2 + 107.65265 ** 2) * (f2 + 737.86223 ** 2))
                                     * (f2 + 12194.217 ** 2))
    return 20 * np.log10(ra) + 2.0


def main():
    with tempfile.TemporaryDirectory() as tmp:
        cap_checks(tmp)

        # 5. The dose guard (issue 7's required test, and a show of songs and breaks).
        guard_checks(tmp)

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
