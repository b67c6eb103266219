#!/usr/bin/env python3
"""End to end: `earshot generate` and `earshot render` as a user runs them.

usage: test_render_e2e.py EARSHOT_EXE

Checks: calibration (1 kHz sine, SPEC §5 figures to 0.05 dB), outputs aligned with the input and
of the same length, float WAV outputs, a 24-bit PCM input, per-musician look-ahead compensation,
the ceiling on a generated band (our own config and configs/band-render.yaml), exit codes 1 / 2 / 78
and their messages. Needs numpy only (WAV files are written and parsed here).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np

EXE = os.path.abspath(sys.argv[1])
SRC = os.environ.get("EARSHOT_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def near(value, expected, tol, what):
    good = value is not None and abs(value - expected) <= tol
    check(good, f"{what}: {value} vs {expected} +- {tol}")


def write_float_wav(path, data, rate):
    """data: frames x channels float32 -> WAVE_FORMAT_IEEE_FLOAT."""
    data = np.asarray(data, dtype="<f4")
    if data.ndim == 1:
        data = data[:, None]
    ch = data.shape[1]
    body = data.tobytes()
    fmt = struct.pack("<HHIIHHH", 3, ch, rate, rate * ch * 4, ch * 4, 32, 0)
    fact = struct.pack("<I", data.shape[0])
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
    riff += b"data" + struct.pack("<I", len(body)) + body
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(riff)) + riff)


def write_pcm24_wav(path, data, rate):
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    ints = np.clip(np.round(data * 8388608.0), -8388608, 8388607).astype("<i4")
    raw = ints.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with wave.open(path, "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(3)
        w.setframerate(rate)
        w.writeframes(raw)


def read_wav(path):
    """Returns (rate, format tag, frames x channels float array); float WAV (incl. extensible)."""
    with open(path, "rb") as f:
        d = f.read()
    assert d[:4] in (b"RIFF", b"RF64") and d[8:12] == b"WAVE", path + ": not a WAV file"
    pos, fmt, tag = 12, None, None
    while pos + 8 <= len(d):
        cid = d[pos:pos + 4]
        size = struct.unpack("<I", d[pos + 4:pos + 8])[0]
        body = d[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
            tag = fmt[0]
            if tag == 0xFFFE:
                tag = struct.unpack("<H", body[24:26])[0]
        elif cid == b"data":
            assert fmt is not None
            ch, bits = fmt[1], fmt[5]
            assert tag == 3 and bits == 32, f"{path}: not 32-bit float (tag {tag}, {bits} bits)"
            return fmt[2], tag, np.frombuffer(body, dtype="<f4").reshape(-1, ch)
        pos += 8 + size + (size & 1)
    raise AssertionError(path + ": no data chunk")


def run(*args):
    p = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=240)
    return p.returncode, p.stdout, p.stderr


def sine(rate, seconds, freq, peak, fade_ms=10.0):
    """A sine switched on with a raised-cosine fade: switched on at full level, its onset transient
    through the C weighting's 20 Hz high-passes reads ~0.3 dB above the steady LCpeak."""
    n = int(round(rate * seconds))
    t = np.arange(n)
    nf = fade_ms * 1e-3 * rate
    g = np.where(t < nf, 0.5 - 0.5 * np.cos(np.pi * t / max(nf, 1.0)), 1.0)
    return (g * peak * np.sin(2 * np.pi * freq * t / rate)).astype(np.float32)


CAL_YAML = """version: 1
inputs:
  - id: tone
  - id: pulses
musicians:
  - id: mon
    output: stereo
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 115 }}
    mix:
      sends:
        tone: {{ gain_db: 3.0103, pan: 0 }}
  - id: imp
    output: mono
    calibration: {{ sine_dbfs: -20, db_spl: 94 }}
    protection: {{ peak_ceiling_db_spl: 115, lookahead_ms: {lookahead} }}
    mix:
      sends:
        pulses: {{ gain_db: 0 }}
"""


def test_calibration(tmp, rate, fmt):
    d = os.path.join(tmp, f"cal-{rate}-{fmt}")
    os.makedirs(d)
    tone = sine(rate, 10.0, 1000.0, 0.1)
    pulses = np.zeros_like(tone)
    at = [0, 1, 255, 256, 4097, rate, len(tone) - 1]
    pulses[at] = 0.25
    inp = os.path.join(d, "in.wav")
    if fmt == "float":
        write_float_wav(inp, np.stack([tone, pulses], axis=1), rate)
    else:
        write_pcm24_wav(inp, np.stack([tone, pulses], axis=1), rate)
    cfg = os.path.join(d, "cal.yaml")
    with open(cfg, "w") as f:
        f.write(CAL_YAML.format(lookahead=1.5))
    out = os.path.join(d, "out")
    rc, so, se = run("render", "--config", cfg, "--input", inp, "--out-dir", out, "--quiet")
    check(rc == 0, f"render {rate} Hz {fmt}: exit 0 (got {rc}: {se.strip()})")
    if rc != 0:
        return
    check(so == "" and se == "", f"render {rate} Hz: --quiet prints nothing")
    with open(os.path.join(out, "report.json")) as f:
        rep = json.load(f)
    check(rep["sample_rate"] == rate, f"report sample_rate {rep['sample_rate']}")
    near(rep["duration_s"], 10.0, 1e-6, "report duration_s")
    check(isinstance(rep["latency_frames"], int) and rep["latency_frames"] > 0, "report latency_frames")
    dose = rep["musicians"][0]["dose"]
    for k in ("niosh_pct", "osha_pct", "osha_action_pct", "eu_lex8h_dba", "who_weekly_pct"):
        check(k in dose, f"dose.{k} present")
    m = {x["id"]: x for x in rep["musicians"]}
    mon = m["mon"]
    tol = 0.05
    near(mon["laeq_dba"], 94.0, tol, f"{rate} Hz laeq_dba")
    near(mon["lcpeak_dbc"], 97.01, tol, f"{rate} Hz lcpeak_dbc")
    near(mon["true_peak_db_spl"], 97.01, tol, f"{rate} Hz true_peak_db_spl")
    near(mon["lafmax_dba"], 94.0, 0.1, f"{rate} Hz lafmax_dba")
    near(mon["sample_peak_dbfs"], -20.0, 0.01 if fmt == "float" else 0.02, f"{rate} Hz sample_peak_dbfs")
    check(mon["limiter"] == {"max_gain_reduction_db": 0.0, "active_s": 0.0}, f"limiter idle: {mon['limiter']}")
    for ear in ("L", "R"):
        near(mon["ears"][ear]["laeq_dba"], 94.0, tol, f"{rate} Hz ear {ear} laeq_dba")
        near(mon["ears"][ear]["lcpeak_dbc"], 97.01, tol, f"{rate} Hz ear {ear} lcpeak_dbc")
    # Outputs: float WAV, the input's rate and length, aligned sample for sample.
    r, tag, mon_wav = read_wav(os.path.join(out, "mon.wav"))
    check(r == rate and tag == 3, "mon.wav is float at the input's rate")
    check(mon_wav.shape == (len(tone), 2), f"mon.wav shape {mon_wav.shape} == ({len(tone)}, 2)")
    src_tone = tone if fmt == "float" else np.round(tone.astype(np.float64) * 8388608.0) / 8388608.0
    check(np.max(np.abs(mon_wav - src_tone[:, None])) < 1e-6, "mon.wav equals the input (aligned, unity gain)")
    r, tag, imp_wav = read_wav(os.path.join(out, "imp.wav"))
    check(imp_wav.shape == (len(tone), 1), f"imp.wav is mono and as long as the input {imp_wav.shape}")
    nz = list(np.flatnonzero(imp_wav[:, 0]))
    check(nz == at, f"impulses at the same samples: {nz[:10]} vs {at}")
    check(np.all(imp_wav[at, 0] == np.float32(0.25)), "impulses at full size")
    check(m["imp"]["latency_frames"] >= mon["latency_frames"], "per-musician latency reported")
    near(m["imp"]["ears"]["L"]["laeq_dba"], m["imp"]["ears"]["R"]["laeq_dba"], 0.0, "mono: both ears report the same")


BAND_YAML = """version: 1
inputs:
  - id: click
  - id: drums
  - id: bass
  - id: vocal
musicians:
  - id: drummer
    output: stereo
    calibration: { sine_dbfs: -20, db_spl: 94 }
    protection: { peak_ceiling_db_spl: 100 }
    mix:
      master_db: 6
      sends:
        click: { gain_db: 0 }
        drums: { gain_db: 6, pan: -0.5 }
        bass: { gain_db: 3, pan: 0.5 }
        vocal: { gain_db: 0 }
  - id: singer
    output: mono
    calibration: { sine_dbfs: -18, db_spl: 100 }
    protection: { peak_ceiling_db_spl: 108 }
    mix:
      sends:
        vocal: { gain_db: 6 }
        bass: { gain_db: -6 }
"""
# Digital ceilings (SPEC §2): peak_ceiling - (db_spl - sine_dbfs + 3.0103), at most 0 dBFS.
BAND_CEILINGS = {"drummer": 100 - (94 + 20 + 3.0103), "singer": 108 - (100 + 18 + 3.0103)}


def check_ceilings(out, rep, ceilings, label):
    for mu in rep["musicians"]:
        c_dbfs = ceilings[mu["id"]] if ceilings else mu["ceiling_dbfs"]
        _, _, x = read_wav(os.path.join(out, mu["id"] + ".wav"))
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        # The engine holds samples to the ceiling as a float: compare at float precision.
        limit = float(np.float32(10 ** (min(c_dbfs, 0.0) / 20)))
        check(peak <= limit, f"{label} {mu['id']}: every sample <= ceiling ({peak:.6f} <= {limit:.6f})")
        check(x.shape[0] == rep["frames"], f"{label} {mu['id']}: output as long as the input")
        if mu["true_peak_db_spl"] is not None:
            check(mu["true_peak_db_spl"] <= mu["ceiling_db_spl"] + 0.5,
                  f"{label} {mu['id']}: true peak {mu['true_peak_db_spl']} within 0.5 dB of the ceiling")


def test_band(tmp):
    band = os.path.join(tmp, "band.wav")
    rc, so, se = run("generate", "--out", band, "--seconds", "20", "--seed", "3")
    check(rc == 0, f"generate: exit 0 ({se.strip()})")
    rate, tag, x = read_wav(band)
    check(rate == 48000 and x.shape == (20 * 48000, 4), f"generated band: 4 channels, 20 s at 48 kHz {x.shape}")
    peak_db = 20 * np.log10(np.max(np.abs(x), axis=0))
    check(bool(np.all(peak_db < -1.0)) and bool(np.all(peak_db > -15.0)), f"band peaks {np.round(peak_db, 1)} dBFS")
    band2 = os.path.join(tmp, "band2.wav")
    run("generate", "--out", band2, "--seconds", "20", "--seed", "3")
    check(np.array_equal(read_wav(band2)[2], x), "generate is deterministic for a seed")

    # Our own config: loud mixes that drive the limiter.
    cfg = os.path.join(tmp, "band.yaml")
    with open(cfg, "w") as f:
        f.write(BAND_YAML)
    out = os.path.join(tmp, "band-out")
    rc, so, se = run("render", "--config", cfg, "--input", band, "--out-dir", out)
    check(rc == 0, f"render the band: exit 0 ({se.strip()})")
    if rc == 0:
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        check_ceilings(out, rep, BAND_CEILINGS, "band.yaml")
        d = {m["id"]: m for m in rep["musicians"]}
        check(d["drummer"]["limiter"]["max_gain_reduction_db"] > 0 and d["drummer"]["limiter"]["active_s"] > 0,
              f"the drummer's hot mix is limited: {d['drummer']['limiter']}")
        check("drummer" in so and "LAeq" in so, "a summary on stdout without --quiet")

    # The repository's band config (4 inputs: click, drums, bass, vocal).
    shipped = os.path.join(SRC, "configs", "band-render.yaml")
    check(os.path.exists(shipped), f"{shipped} exists")
    if os.path.exists(shipped):
        out = os.path.join(tmp, "shipped-out")
        rc, so, se = run("render", "--config", shipped, "--input", band, "--out-dir", out, "--quiet")
        check(rc == 0, f"render configs/band-render.yaml: exit 0 ({se.strip()})")
        if rc == 0:
            with open(os.path.join(out, "report.json")) as f:
                rep = json.load(f)
            check(len(rep["musicians"]) > 0, "band-render.yaml has musicians")
            for mu in rep["musicians"]:
                expect = min(mu["ceiling_db_spl"] - mu["calibration_offset_db"], 0.0)
                near(mu["ceiling_dbfs"], expect, 1e-3, f"{mu['id']}: ceiling_dbfs follows SPEC §2")
            check_ceilings(out, rep, None, "band-render.yaml")


def test_errors(tmp):
    d = os.path.join(tmp, "errors")
    os.makedirs(d)
    rc, so, se = run("render")
    check(rc == 2 and "--config" in se, f"no options: exit 2 with a message (got {rc})")
    rc, so, se = run("render", "--config", "x.yaml", "--input", "x.wav", "--bogus")
    check(rc == 2 and "--bogus" in se, f"unknown option: exit 2 (got {rc})")
    rc, so, se = run("render", "--help")
    check(rc == 0 and "--out-dir" in so, "render --help")
    rc, so, se = run("generate", "--help")
    check(rc == 0 and "--seed" in so, "generate --help")
    rc, so, se = run("generate", "--out", os.path.join(d, "x.wav"), "--channels", "0")
    check(rc == 2, f"generate --channels 0: exit 2 (got {rc})")

    # A config with two errors: both printed, one per line with file:line:col, exit 78.
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("version: 1\ninputs:\n  - id: a\nmusicians:\n  - id: m\n    output: stereo\n"
                "    protection: { peak_ceiling_db_spl: 150 }\n    mix:\n      sends:\n        a: { gain_db: 0 }\n"
                "    calibraton: { sine_dbfs: -20 }\n")
    inp = os.path.join(d, "one.wav")
    write_float_wav(inp, sine(48000, 1.0, 440.0, 0.1), 48000)
    rc, so, se = run("render", "--config", bad, "--input", inp, "--out-dir", os.path.join(d, "o"))
    lines = [l for l in se.splitlines() if l.strip()]
    check(rc == 78, f"bad config: exit 78 (got {rc})")
    check(len(lines) >= 2, f"bad config: every error printed, one per line: {lines}")
    check(any("bad.yaml:7:" in l and "150" in l for l in lines), "the out-of-range ceiling names file:line and value")
    check(any("bad.yaml:11:" in l and "calibraton" in l for l in lines), "the unknown key names file:line")
    check(not os.path.exists(os.path.join(d, "o", "report.json")), "no report for a bad config")

    # The input's channel count must match the config's inputs.
    good = os.path.join(d, "good.yaml")
    with open(good, "w") as f:
        f.write(CAL_YAML.format(lookahead=1.0))
    three = os.path.join(d, "three.wav")
    write_float_wav(three, np.zeros((4800, 3), dtype=np.float32), 48000)
    rc, so, se = run("render", "--config", good, "--input", three, "--out-dir", os.path.join(d, "o3"))
    check(rc == 1 and "3 channels" in se and "2 inputs" in se, f"channel mismatch: exit 1 and a clear message ({se.strip()})")
    rc, so, se = run("render", "--config", good, "--input", os.path.join(d, "missing.wav"))
    check(rc == 1 and "no such file" in se, f"missing input: exit 1 ({se.strip()})")
    rc, so, se = run("render", "--config", good, "--input", good)
    check(rc == 1 and "not an audio file" in se, f"a text file as input: exit 1 ({se.strip()})")


def main():
    with tempfile.TemporaryDirectory(prefix="earshot-e2e-render-") as tmp:
        for rate in (44100, 48000, 96000):
            test_calibration(tmp, rate, "float")
        test_calibration(tmp, 48000, "pcm24")
        test_band(tmp)
        test_errors(tmp)
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
