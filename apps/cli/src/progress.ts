// A progress bar on stderr: redrawn in place on a terminal, one line per ~10% otherwise (CI logs, pipes).
export class ProgressBar {
  private lastPct = -1;
  private readonly t0 = Date.now();

  constructor(private readonly out: { write(s: string): unknown; isTTY?: boolean }, private readonly label: string, private readonly width = 30) {}

  update(done: number, total: number, suffix = ''): void {
    const frac = total > 0 ? done / total : 1;
    const elapsed = (Date.now() - this.t0) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : 0;
    const timing = `${elapsed.toFixed(0)}s elapsed${done < total ? `, ETA ${eta.toFixed(0)}s` : ''}`;
    if (this.out.isTTY) {
      const filled = Math.round(frac * this.width);
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}] ${done}/${total} ${suffix} ${timing}\x1b[K`);
      if (done >= total) this.out.write('\n');
      return;
    }
    const pct = Math.floor(frac * 10) * 10;
    if (pct > this.lastPct || done >= total) {
      this.lastPct = pct;
      this.out.write(`${this.label} ${done}/${total} (${Math.round(frac * 100)}%) ${suffix} ${timing}\n`);
    }
  }
}
