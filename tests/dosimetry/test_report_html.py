#!/usr/bin/python3
"""earshot report end to end: logs written in the documented CSV format (docs/exposure-logs.md,
with its FNV-1a checksum) are read by `earshot report`; JSON and CSV carry the figures; the HTML page
renders in headless Chromium with no console errors, and a screenshot shows the charts (pixels of
each chart colour are counted, not just the file's existence). Exit 77 (skip) if chromium is absent.
"""
import json, os, shutil, struct, subprocess, sys, tempfile, zlib

earshot = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


HEADER = ("start_utc,local_date,duration_s,laeq_dba,laeq_l_dba,laeq_r_dba,leak_dba,lafmax_dba,lcpeak_dbc,"
          "pa2s,leak_pa2s,niosh_pct,osha_pct,osha_action_pct,who_weekly_pct,limiter_gr_max_db,"
          "niosh_row_pct,osha_row_pct,osha_action_row_pct,musician,checksum")


def row(musician, day, hh, mm, level):
    pa2s = 4e-10 * 10 ** (level / 10) * 60
    niosh = 100 * (60 / 3600) / (8 / 2 ** ((level - 85) / 3))
    osha = 100 * (60 / 3600) / (8 / 2 ** ((level - 90) / 5)) if level >= 90 else 0
    action = 100 * (60 / 3600) / (8 / 2 ** ((level - 90) / 5)) if level >= 80 else 0
    body = (f"{day}T{hh:02d}:{mm:02d}:00.000Z,{day},60.000,{level:.2f},{level:.2f},{level - 2:.2f},,{level + 3:.2f},"
            f"{level + 12:.2f},{pa2s:.9f},0.000000000,0,0,0,0,1.50,{niosh:.9f},{osha:.9f},{action:.9f},{musician}")
    return body + f",{fnv1a(body):08x}"


tmp = tempfile.mkdtemp(prefix="earshot-report-e2e-")
try:
    state = os.path.join(tmp, "state")
    for musician, day, base in [("drums", "2026-03-10", 96), ("drums", "2026-03-11", 101), ("vocal", "2026-03-10", 88)]:
        d = os.path.join(state, "exposure", musician)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, day + ".csv"), "w") as f:
            f.write(HEADER + "\n")
            for k in range(90):  # 90 minutes from 20:00 UTC, levels varying
                f.write(row(musician, day, 20 + k // 60, k % 60, base + (k % 9) - 4) + "\n")
            f.write(row(musician, day, 23, 0, 99)[:40])  # a torn last line
    env = dict(os.environ, TZ="UTC")
    common = [earshot, "report", "--state-dir", state, "--from", "2026-03-10", "--to", "2026-03-11"]

    js = json.loads(subprocess.run(common + ["--format", "json"], env=env, check=True, capture_output=True, text=True).stdout)
    check(js["schema"] == 1, "json schema 1")
    check(js["skipped_lines"] == 3, f"three torn lines skipped ({js['skipped_lines']})")
    ms = {m["id"]: m for m in js["musicians"]}
    check(set(ms) == {"drums", "vocal"}, "both musicians")
    d0 = ms["drums"]["days"][0]
    check(d0["date"] == "2026-03-10" and abs(d0["exposed_s"] - 5400) < 1e-6, "drums day 1: 90 min")
    want = sum(100 * (1 / 60) / (8 / 2 ** ((96 + (k % 9) - 4 - 85) / 3)) for k in range(90))
    check(abs(d0["niosh_pct"] - want) < 1e-3, f"drums day 1 NIOSH {d0['niosh_pct']:.3f} % == {want:.3f} %")
    check(ms["drums"]["over_niosh"] is True, "drums flagged over 100 % NIOSH")

    csv = subprocess.run(common + ["--format", "csv", "--musician", "vocal"], env=env, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()
    check(len(csv) == 2 and csv[1].startswith("vocal,2026-03-10,5400.0,"), "csv: vocal's one day")

    table = subprocess.run(common + ["--format", "table"], env=env, check=True, capture_output=True, text=True).stdout
    check("drums" in table and "2026-03-11" in table, "table lists the days")

    html = os.path.join(tmp, "report.html")
    subprocess.run(common + ["--format", "html", "--output", html], env=env, check=True)
    page = open(html).read()
    check("<script" not in page and "http://" not in page and "https://" not in page, "self-contained page")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIP: chromium is not installed (scripts/install-deps.sh installs it)")
        sys.exit(77 if not failures else 1)
    png = os.path.join(tmp, "shot.png")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={os.path.join(tmp, 'profile')}", "--enable-logging=stderr", "--v=0",
             "--hide-scrollbars", "--window-size=1200,1600"]
    shot = subprocess.run(flags + [f"--screenshot={png}", "file://" + html], capture_output=True, text=True, timeout=120)
    console = [l for l in shot.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    check(not console, f"no console errors ({console[:3]})")
    check(os.path.exists(png), "screenshot written")

    # Decode the PNG (8-bit RGB/RGBA, non-interlaced: what Chromium writes) and count chart colours.
    data = open(png, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    check(w == 1200, f"screenshot is 1200 px wide ({w})")
    bpp = {2: 3, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    colours = {"level line": (0x1f, 0x77, 0xb4), "85 dBA line": (0xff, 0x99, 0x00), "100 dBA / 100 % lines": (0xd6, 0x27, 0x28),
               "NIOSH bars": (0x2c, 0xa0, 0x2c), "WHO gauge": (0x94, 0x67, 0xbd)}
    counts = {k: 0 for k in colours}
    for line in rows:
        for x in range(0, w * bpp, bpp):
            px = (line[x], line[x + 1], line[x + 2])
            for k, c in colours.items():
                if abs(px[0] - c[0]) <= 6 and abs(px[1] - c[1]) <= 6 and abs(px[2] - c[2]) <= 6:
                    counts[k] += 1
    for k, n in counts.items():
        check(n >= 300, f"{k}: {n} pixels in the screenshot")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{'FAIL' if failures else 'PASS'}: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
