// Pure helpers for showing untrusted text: snippet segments, times in a display zone.
import type { Snippet, TraceStep } from "./ipc";

export interface Segment { text: string; hit: boolean }

/** Splits a snippet into plain and matched segments; ranges are in Unicode scalar values (code points). */
export function segments(s: Snippet): Segment[] {
  const chars = Array.from(s.text);
  const out: Segment[] = [];
  let at = 0;
  const ranges = [...s.ranges].sort((a, b) => a[0] - b[0]);
  for (const [from, to] of ranges) {
    const a = Math.max(at, Math.min(from, chars.length));
    const b = Math.max(a, Math.min(to, chars.length));
    if (a > at) out.push({ text: visible(chars.slice(at, a).join("")), hit: false });
    if (b > a) out.push({ text: visible(chars.slice(a, b).join("")), hit: true });
    at = Math.max(at, b);
  }
  if (at < chars.length) out.push({ text: visible(chars.slice(at).join("")), hit: false });
  return out;
}

export type Zone = "UTC" | "local" | string;

// Building an Intl.DateTimeFormat costs far more than using one: one per zone, reused by every row.
const formats = new Map<string, Intl.DateTimeFormat>();
function formatFor(zone: Zone): Intl.DateTimeFormat {
  let f = formats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone === "local" ? undefined : zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short",
    });
    formats.set(zone, f);
  }
  return f;
}

/** Formats an RFC 3339 / epoch-ms time in the display zone (the store keeps UTC). */
export function fmtTime(t: string | number | null | undefined, zone: Zone): string {
  if (t === null || t === undefined || t === "") return "";
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const parts = formatFor(zone).formatToParts(d);
  const get = (k: string) => parts.find((p) => p.type === k)?.value ?? "";
  const hour = get("hour") === "24" ? "00" : get("hour");
  return `${get("year")}-${get("month")}-${get("day")} ${hour}:${get("minute")}:${get("second")} ${get("timeZoneName")}`;
}

/** A query restricted to a time range (histogram drag), in the search syntax. */
export function withRange(query: string, fromMs: number, toMs: number): string {
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19);
  const base = query.replace(/\s*time:\[[^\]]*\]/g, "").trim();
  return `${base} time:[${iso(fromMs)} TO ${iso(toMs)}]`.trim();
}

/** A query with a facet filter added (or the same query when it is already there). */
export function withFacet(query: string, field: string, value: string): string {
  const quoted = /[\s"()]/.test(value) ? `"${value.replace(/"/g, "")}"` : value;
  const term = `${field}:${quoted}`;
  return query.includes(term) ? query : `${query} ${term}`.trim();
}

/** The events of a finding's trace as a search (a case-wide detection has no session to open). */
export function traceEventsQuery(trace: TraceStep[]): string {
  const ids = [...new Set(trace.map((t) => t.cell.event_id).filter((e) => e != null))];
  return ids.map((e) => `id:${e}`).join(" OR ");
}

/** Bytes for people. */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ["KB", "MB", "GB", "TB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${u[i]}`;
}

/** Image outputs that may be shown: a base64 payload of a raster type, nothing else (no SVG: it can script). */
export function safeImage(data: Record<string, unknown> | undefined): string | null {
  if (!data) return null;
  for (const mime of ["image/png", "image/jpeg", "image/gif"]) {
    const v = data[mime];
    const s = Array.isArray(v) ? v.join("") : v;
    if (typeof s === "string" && /^[A-Za-z0-9+/=\s]+$/.test(s)) return `data:${mime};base64,${s.replace(/\s/g, "")}`;
  }
  return null;
}

/**
 * Untrusted text as it may be shown (the same rule as `nbtrail_model::display` in Rust): C0 control
 * characters and DEL as their one-character Unicode pictures (ESC → ␛); C1 controls, bidirectional
 * formatting characters (the "Trojan Source" trick that makes code display reordered), every other
 * invisible or format character (Unicode category Cf: zero-width space and joiners, word joiner, BOM, soft
 * hyphen, tag characters), the line/paragraph separators U+2028/2029, Hangul fillers and variation
 * selectors (but U+FE0E/FE0F) as `\u{…}` escapes. Tab and newline are kept.
 */
const HIDDEN =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029\u115f\u1160\u3164\uffa0\ufe00-\ufe0d\u180b-\u180f\u{e0000}-\u{e007f}\u{e0100}-\u{e01ef}]/gu;

export function visible(s: string): string {
  return s.replace(HIDDEN, (c) => {
    const n = c.codePointAt(0) ?? 0;
    if (n < 0x20) return String.fromCharCode(0x2400 + n);
    if (n === 0x7f) return "\u2421";
    return `\\u{${n.toString(16)}}`;
  });
}
