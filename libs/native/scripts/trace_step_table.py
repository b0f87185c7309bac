#!/usr/bin/env python3
"""Where a decode step's time goes with the kernels overlapping as they do in the engine (PDL, graphs): reads a kernel
trace CSV with columns Start (ns), Duration (ns), GrdX, Name (cupti_trace.cpp writes it; Nsight Systems' cuda_gpu_trace
report, nsys stats -r cuda_gpu_trace -f csv, has the same columns), cuts
the kernels into steps at each embedding kernel, keeps the steps with the most common kernel count (decode steps of
one batch size), and per kernel name prints: launches per step, median duration, and the median "advance" per step,
the sum over its launches of end - the previous kernel's end (the step's wall time split among its kernels: a kernel
that finishes under its predecessor's shadow advances little; the gap before the step's first kernel is the host's).
  python3 trace_step_table.py trace.csv [--skip 4]"""
import argparse
import csv
import re
import statistics
from collections import Counter, defaultdict


def short(name):
    name = name.replace('(anonymous namespace)::', '').replace('lmfleet::', '')
    name = re.sub(r'\((int|bool|unsigned int|long|float)\)', '', name)  # nsys writes template arguments as (int)1
    name = re.sub(r'\(.*$', '', name)
    name = re.sub(r'^void ', '', name).replace(' ', '')
    return name if len(name) <= 70 else name[:67] + '...'


def col(header, *prefixes):
    for p in prefixes:
        for i, h in enumerate(header):
            if h.startswith(p):
                return i
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csv')
    ap.add_argument('--skip', type=int, default=4, help='decode steps dropped at the start (warm-up)')
    ap.add_argument('--device', default='0', help='the GPU whose kernels are read (a Device column, where there is one)')
    a = ap.parse_args()
    with open(a.csv, newline='') as f:
        rd = csv.reader(f)
        header = None
        rows = []
        for r in rd:
            if header is None:
                if any(h.startswith('Start') for h in r) and 'Name' in r:
                    header = r
                continue
            rows.append(r)
    if header is None:
        print('no trace header')
        return
    cs, cd, cn, cg = col(header, 'Start'), col(header, 'Duration'), col(header, 'Name'), col(header, 'GrdX')
    cdev = col(header, 'Device')
    ks = []
    for r in rows:
        try:
            s, d = float(r[cs]), float(r[cd])
        except (ValueError, IndexError):
            continue
        n = r[cn]
        if n.startswith('[CUDA') or (cdev is not None and r[cdev] != a.device):
            continue
        g = r[cg] if cg is not None else ''
        ks.append((s, s + d, f'{short(n)} [{g}]', g))
    ks.sort()
    steps, cur = [], []
    for k in ks:
        if 'embedding' in k[2] and cur:
            steps.append(cur)
            cur = []
        cur.append(k)
    if not steps:
        print('no steps (no embedding kernel)')
        return
    mode = Counter(len(s) for s in steps).most_common(1)[0][0]
    idx = [i for i, s in enumerate(steps) if len(s) == mode and i + 1 < len(steps)]
    idx = idx[a.skip:] if len(idx) > a.skip + 2 else idx
    walls, busy_sums, host = [], [], []
    dur = defaultdict(list)
    adv = defaultdict(list)
    cnt = Counter(k[2] for k in steps[idx[0]])
    for i in idx:
        st, nxt = steps[i], steps[i + 1]
        walls.append((nxt[0][0] - st[0][0]) / 1e3)
        busy_sums.append(sum(k[1] - k[0] for k in st) / 1e3)
        host.append((nxt[0][0] - max(k[1] for k in st)) / 1e3)
        a_step = defaultdict(float)
        prev_end = st[0][0]
        for k in st:
            dur[k[2]].append((k[1] - k[0]) / 1e3)
            e = max(prev_end, k[1])
            a_step[k[2]] += (e - prev_end) / 1e3
            prev_end = e
        for n, v in a_step.items():
            adv[n].append(v)
    med = statistics.median
    print(f'{len(idx)} decode steps of {mode} kernels: wall median {med(walls):.1f} us, kernel durations summed '
          f'{med(busy_sums):.1f} us, after the last kernel until the next step {med(host):.1f} us')
    print('| kernel [grid] | per step | median us | advance us/step | share |')
    print('|---|---|---|---|---|')
    w = med(walls)
    for n in sorted(adv, key=lambda n: -med(adv[n])):
        print(f'| {n} | {cnt[n]} | {med(dur[n]):.2f} | {med(adv[n]):.1f} | {100 * med(adv[n]) / w:.1f}% |')
    # the middle step's kernels in order, cut into layers at the first kernel that runs once per layer (as many
    # times per step as the decode attention kernel; an unfused first rms_norm runs once per step and is skipped)
    st = steps[idx[len(idx) // 2]]
    body = [k for k in st if 'embedding' not in k[2]]
    per_step = Counter(k[2] for k in body)
    layers = max([n for key, n in per_step.items() if 'attention_decode_kernel' in key] or [per_step.most_common(1)[0][1]])
    first = next((k[2] for k in body if per_step[k[2]] == layers), body[0][2])
    starts = [i for i, k in enumerate(body) if k[2] == first] + [len(body)]
    if len(starts) < 3:  # fewer than two layers: show the step as it is
        starts = [0, 0, len(body)]
    print(f'\nthe middle step, {len(starts) - 1} layers: layers {len(starts) // 2 - 1} and {len(starts) // 2} and what follows the last '
          f'(start / end relative to the first kernel shown; gap = start - previous end)')
    print('| kernel [grid] | start us | end us | dur us | gap us | advance us |')
    print('|---|---|---|---|---|---|')
    m = len(starts) // 2
    seg = body[starts[m - 1]:starts[m + 1]] + body[starts[-2]:]
    t0 = seg[0][0]
    prev_end = None
    for k in seg:
        gap = '' if prev_end is None else f'{(k[0] - prev_end) / 1e3:.2f}'
        advn = '' if prev_end is None else f'{(max(prev_end, k[1]) - prev_end) / 1e3:.2f}'
        print(f'| {k[2]} | {(k[0] - t0) / 1e3:.2f} | {(k[1] - t0) / 1e3:.2f} | {(k[1] - k[0]) / 1e3:.2f} | {gap} | {advn} |')
        prev_end = k[1] if prev_end is None else max(prev_end, k[1])


if __name__ == '__main__':
    main()
