#!/usr/bin/python3
"""Independent numpy cross-check of the A/C weighting design (docs/dsp-weighting.md).

Recomputes, without the C++ code:
  * the IEC 61672-1 pole frequencies and the analytic values of hearing-dose.md §7.6;
  * the plain-bilinear errors of hearing-dose.md §3.3 (what SPEC §4 rules out);
  * the run-time design of src/dsp/weighting.cpp (prewarped bilinear high-passes, impulse-invariant
    f4 double pole with a least-squares-fitted numerator, A = C * hp(f2, f3)) and its error table,
    to compare with `test_dsp "[.weighting-table]"`.

Exits non-zero if a reference value or a SPEC §4 limit is not met. Needs numpy only.
Usage: /usr/bin/python3 tests/dsp/weighting_reference.py
"""
import sys

import numpy as np

failures = []


def check(name, value, want, tol):
    if not abs(value - want) <= tol:
        failures.append(f"{name}: {value:.6f}, want {want} +- {tol}")


# --- analytic weightings (hearing-dose.md §3.1) ---
fr, fL, fH, D, fA = 1000.0, 10**1.5, 10**3.9, np.sqrt(0.5), 10**2.45
c = fL**2 * fH**2
b = (fr**2 + fL**2 * fH**2 / fr**2 - D * (fL**2 + fH**2)) / (1 - D)
f1 = np.sqrt((-b - np.sqrt(b * b - 4 * c)) / 2)
f4 = np.sqrt((-b + np.sqrt(b * b - 4 * c)) / 2)
f2 = (3 - np.sqrt(5)) / 2 * fA
f3 = (3 + np.sqrt(5)) / 2 * fA
check("f1", f1, 20.598997, 5e-7)
check("f2", f2, 107.65265, 5e-6)
check("f3", f3, 737.86223, 5e-6)
check("f4", f4, 12194.217, 5e-4)


def c_raw(f):
    return f4**2 * f**2 / ((f**2 + f1**2) * (f**2 + f4**2))


def a_raw(f):
    return c_raw(f) * f**2 / np.sqrt((f**2 + f2**2) * (f**2 + f3**2))


def a_db(f):
    return 20 * np.log10(a_raw(f) / a_raw(1000.0))


def c_db(f):
    return 20 * np.log10(c_raw(f) / c_raw(1000.0))


for f, a, cc in [(10, -70.43, -14.33), (31.623, -39.44, -3.01), (100, -19.14, -0.30), (1000, 0, 0),
                 (1995.26, 1.20, -0.17), (2511.89, 1.27, -0.30), (3981.07, 0.97, -0.82),
                 (10000, -2.49, -4.41), (15848.9, -6.60, -8.53), (19952.6, -9.32, -11.25)]:
    check(f"A({f})", a_db(f), a, 0.01)
    check(f"C({f})", c_db(f), cc, 0.01)
check("A(12000)", a_db(12000.0), -3.90, 0.01)


# --- digital sections ---
def section(sec, f, fs):
    b0, b1, b2, a1, a2 = sec
    z1 = np.exp(-2j * np.pi * np.asarray(f, dtype=float) / fs)
    return (b0 + b1 * z1 + b2 * z1 * z1) / (1 + a1 * z1 + a2 * z1 * z1)


def cascade_db(secs, f, fs):
    h = 1.0
    for s in secs:
        h = h * section(s, f, fs)
    return 20 * np.log10(np.abs(h))


def plain_bilinear_a_db(f, fs):
    def h(ff):
        z = np.exp(2j * np.pi * ff / fs)
        s = 2 * fs * (z - 1) / (z + 1)
        v = s**4
        for p in (f1, f1, f2, f3, f4, f4):
            v = v / (s + 2 * np.pi * p)
        return np.abs(v)
    return 20 * np.log10(h(f) / h(1000.0))


for f, want in [(10000, -1.21), (12500, -2.67), (16000, -6.43)]:
    check(f"plain bilinear 48k {f}", plain_bilinear_a_db(f, 48000.0) - a_db(f), want, 0.01)


def highpass_pair(fa, fb, fs):
    ta, tb = np.tan(np.pi * fa / fs), np.tan(np.pi * fb / fs)
    ga, gb = 1 / (1 + ta), 1 / (1 + tb)
    qa, qb = (1 - ta) * ga, (1 - tb) * gb
    return (ga * gb, -2 * ga * gb, ga * gb, -(qa + qb), qa * qb)


def fitted_lowpass(hp1, fs):
    q = np.exp(-2 * np.pi * f4 / fs)
    a1, a2 = -2 * q, q * q
    f = 10 * (min(20000.0, 0.98 * fs / 2) / 10) ** (np.arange(400) / 399)
    w = 2 * np.pi * f / fs
    z1 = np.exp(-1j * w)
    target = c_raw(f) ** 2 / np.abs(section(hp1, f, fs)) ** 2 * np.abs(1 + a1 * z1 + a2 * z1 * z1) ** 2
    weight = np.where(f <= 16500, 1.0, 0.05) / target
    rows = np.stack([np.ones_like(w), 2 * np.cos(w), 2 * np.cos(2 * w)], axis=1)
    r = np.linalg.lstsq(rows * weight[:, None], target * weight, rcond=None)[0]
    zeros = []
    for u in np.roots([r[2], r[1], r[0] - 2 * r[2]]):  # z + 1/z = u
        s = np.sqrt(complex(u * u - 4))
        z = min(((u + s) / 2, (u - s) / 2), key=abs)
        zeros.append(z)
    num = np.real(np.poly(zeros))
    return (num[0], num[1], num[2], a1, a2), zeros


def design(fs):
    hp1 = highpass_pair(f1, f1, fs)
    lp, zeros = fitted_lowpass(hp1, fs)
    hp23 = highpass_pair(f2, f3, fs)
    return [hp1, lp], [hp1, lp, hp23], zeros


grid = 10 * 2 ** (np.arange(24 * 11) / 24)
grid = np.append(grid[grid < 12500], 12500.0)
print("| fs | weighting | 10 kHz | 12.5 kHz | 16 kHz | 20 kHz (19953) | worst 10 Hz-12.5 kHz |")
print("|---|---|---|---|---|---|---|")
for fs in (44100.0, 48000.0, 88200.0, 96000.0, 176400.0, 192000.0):
    c_secs, a_secs, zeros = design(fs)
    if max(abs(z) for z in zeros) >= 0.5:
        failures.append(f"fs {fs}: fitted zeros {zeros}")
    for name, secs, ref in (("A", a_secs, a_db), ("C", c_secs, c_db)):
        def err(f):
            return cascade_db(secs, f, fs) - cascade_db(secs, 1000.0, fs) - ref(f)
        worst = np.max(np.abs(err(grid)))
        if worst > 0.2 or abs(err(16000.0)) > 0.5:
            failures.append(f"fs {fs} {name}: worst {worst:.3f}, 16 kHz {err(16000.0):+.3f}")
        print(f"| {fs / 1000:.1f} kHz | {name} | {err(10000.0):+.3f} | {err(12500.0):+.3f} | "
              f"{err(16000.0):+.3f} | {err(19953.0):+.3f} | {worst:.3f} |")

if failures:
    print("\nFAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("\nall reference checks passed")
