#!/usr/bin/env python3
"""Per-kernel durations of an engine run profiled by Nsight Compute (ncu --csv --page raw, metrics
gpu__time_duration.sum and launch__grid_size): kernels grouped by (name, grid), with count, median and total time,
largest total first. Kernels run one at a time under ncu (no PDL overlap), so the totals bound each kernel's share of a
step from above; the medians rank them.
  python3 ncu_step_table.py ncu_engine.csv [--min-count 32] [--top 30]"""
import argparse
import csv
import re
import statistics


def short(name):
    name = re.sub(r'\(.*$', '', name)  # drop the argument list
    return name if len(name) <= 90 else name[:87] + '...'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csv')
    ap.add_argument('--min-count', type=int, default=1)
    ap.add_argument('--top', type=int, default=30)
    a = ap.parse_args()
    rows = []
    with open(a.csv, newline='') as f:
        lines = [l for l in f if l.startswith('"')]
    rd = csv.reader(lines)
    header = next(rd, None)
    if not header:
        print('no ncu rows')
        return
    ix = {h: i for i, h in enumerate(header)}
    kn, gs, dur = ix.get('Kernel Name'), ix.get('launch__grid_size', ix.get('Grid Size')), ix.get('gpu__time_duration.sum')
    if kn is None or dur is None:
        print('columns missing:', header[:20])
        return
    groups = {}
    for r in rd:
        try:
            d = float(r[dur].replace(',', ''))
        except (ValueError, IndexError):
            continue  # the units row
        key = (short(r[kn]), r[gs] if gs is not None else '')
        groups.setdefault(key, []).append(d / 1e3)  # gpu__time_duration.sum is in ns
    tab = sorted(groups.items(), key=lambda kv: -sum(kv[1]))
    print('| kernel | grid | count | median us | total us |')
    print('|---|---|---|---|---|')
    for (name, grid), ds in tab[:a.top]:
        if len(ds) < a.min_count:
            continue
        print(f'| {name} | {grid} | {len(ds)} | {statistics.median(ds):.2f} | {sum(ds):.1f} |')


if __name__ == '__main__':
    main()
