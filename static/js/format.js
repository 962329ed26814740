// Number formatting for the timeline, the stats, the verdict and the charts. A number and
// its unit are joined by a no-break space, so "2000 ms" never breaks across two lines.

const nf1 = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
export const NBSP = "\u00a0";

/** 1234 -> "1.2 KB", in powers of 1000 like network rates. */
export function formatBytes(bytes) {
  if (bytes == null || !Number.isFinite(bytes)) return "–";
  if (bytes < 1000) return `${nf0.format(bytes)}${NBSP}B`;
  if (bytes < 1e6) return `${nf1.format(bytes / 1e3)}${NBSP}KB`;
  return `${nf1.format(bytes / 1e6)}${NBSP}MB`;
}

/** 1234 -> "1.23 s", 87.4 -> "87 ms". */
export function formatMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${nf0.format(ms)}${NBSP}ms`;
  return `${(ms / 1000).toFixed(2)}${NBSP}s`;
}

/** A clock reading in seconds with two decimals: "3.21 s". */
export function formatClock(ms) {
  return `${(Math.max(0, ms) / 1000).toFixed(2)}${NBSP}s`;
}

/** PSNR in dB; null means the level is exact (infinite PSNR). */
export function formatPsnr(db) {
  if (db == null || db === Infinity) return "∞ (exact)";
  if (!Number.isFinite(db)) return "–";
  return `${db.toFixed(2)}${NBSP}dB`;
}

export function formatSsim(value) {
  if (value == null || !Number.isFinite(value)) return "–";
  return value.toFixed(4);
}

export function formatSize(width, height) {
  return `${width} × ${height}`;
}

/** 1600 -> "1.6 Mbit/s", 400 -> "400 kbit/s". */
export function formatRate(kbps) {
  if (kbps == null || !Number.isFinite(kbps)) return "–";
  if (kbps >= 1000) return `${nf1.format(kbps / 1000)}${NBSP}Mbit/s`;
  return `${nf0.format(kbps)}${NBSP}kbit/s`;
}

/** A share in 0..1 as a whole percentage: 0.8234 -> "82%". */
export function formatShare(share) {
  if (share == null || !Number.isFinite(share)) return "–";
  return `${Math.round(share * 100)}%`;
}
