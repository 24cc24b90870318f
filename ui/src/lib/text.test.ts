import { describe, expect, it } from "vitest";
import { fmtTime, safeImage, segments, traceEventsQuery, visible, withFacet, withRange } from "./text";

describe("segments", () => {
  it("splits by code-point ranges, not UTF-16 units", () => {
    const s = segments({ text: "é😀 secrets.get(x)", ranges: [[3, 14]] });
    expect(s).toEqual([
      { text: "é😀 ", hit: false },
      { text: "secrets.get", hit: true },
      { text: "(x)", hit: false },
    ]);
  });
  it("shows hidden characters in each segment, with ranges counted on the original text", () => {
    const s = segments({ text: "a\u202eb\u001bc", ranges: [[2, 3]] });
    expect(s).toEqual([
      { text: "a\\u{202e}", hit: false },
      { text: "b", hit: true },
      { text: "\u241bc", hit: false },
    ]);
  });
  it("clamps ranges beyond the text and merges overlaps safely", () => {
    expect(segments({ text: "abc", ranges: [[1, 99], [0, 2]] }).map((x) => x.text).join("")).toBe("abc");
  });
});

describe("times", () => {
  it("shows UTC and other zones from the stored UTC time", () => {
    expect(fmtTime("2024-05-01T14:03:04.000Z", "UTC")).toBe("2024-05-01 14:03:04 UTC");
    expect(fmtTime("2024-05-01T14:03:04.000Z", "Asia/Tokyo")).toMatch(/^2024-05-01 23:03:04 /);
    expect(fmtTime(null, "UTC")).toBe("");
  });
  it("builds range and facet queries in the search syntax", () => {
    const q = withRange("secrets.get time:[2020-01-01 TO 2020-01-02]", Date.UTC(2024, 4, 1, 14), Date.UTC(2024, 4, 1, 15));
    expect(q).toBe("secrets.get time:[2024-05-01T14:00:00 TO 2024-05-01T15:00:00]");
    expect(withFacet("x", "user", "alice@example.com")).toBe("x user:alice@example.com");
    expect(withFacet("x", "notebook", "/Users/a b")).toBe('x notebook:"/Users/a b"');
    expect(withFacet("x user:a", "user", "a")).toBe("x user:a");
  });
});

describe("untrusted content", () => {
  it("only raster base64 images become data URLs", () => {
    expect(safeImage({ "image/png": "iVBORw0KGgo=" })).toBe("data:image/png;base64,iVBORw0KGgo=");
    expect(safeImage({ "image/svg+xml": "<svg onload=alert(1)>" })).toBeNull();
    expect(safeImage({ "image/png": "\"><script>" })).toBeNull();
  });
  it("control characters become visible pictures", () => {
    expect(visible("\u001b[31mred")).toBe("\u241b[31mred");
    expect(visible("a\tb\nc")).toBe("a\tb\nc");
  });
  it("bidirectional formatting characters and C1 controls become escapes (Trojan Source)", () => {
    expect(visible("user\u202e \u2066// admin\u2069 \u2066")).toBe("user\\u{202e} \\u{2066}// admin\\u{2069} \\u{2066}");
    expect(visible("x\u200fy\u061cz\u0085")).toBe("x\\u{200f}y\\u{61c}z\\u{85}");
    expect(visible("שלום café ❤\ufe0f")).toBe("שלום café ❤\ufe0f");
  });
  it("invisible and format characters become escapes (zero-width, separators, tags, fillers)", () => {
    expect(visible("pass\u200bword")).toBe("pass\\u{200b}word");
    expect(visible("a\u200db\u2060c\ufeffd\u00ade")).toBe("a\\u{200d}b\\u{2060}c\\u{feff}d\\u{ad}e");
    expect(visible("x = 1\u2028import os\u2029")).toBe("x = 1\\u{2028}import os\\u{2029}");
    expect(visible("ok\u{e0041}\u{e007f}")).toBe("ok\\u{e0041}\\u{e007f}");
    expect(visible("\u3164 = s\ufe00\u{e0100}")).toBe("\\u{3164} = s\\u{fe00}\\u{e0100}");
  });
});

describe("traceEventsQuery", () => {
  it("searches each event of a trace once, skipping steps without an event", () => {
    const step = (e: number | undefined) =>
      ({ cell: { seq: 0, command_id: null, event_id: e }, span: { line: 1, col: 1, end_line: 1, end_col: 1 }, label: "" }) as never;
    expect(traceEventsQuery([step(7), step(undefined), step(9), step(7)])).toBe("id:7 OR id:9");
  });
});
