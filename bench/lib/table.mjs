/** The median of a non-empty list of numbers. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * A Markdown table with padded columns, readable as it is in a terminal. `align` holds "l" or "r"
 * per column.
 */
export function markdownTable(headers, rows, align) {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column].length)));
  const pad = (cell, column) => (align[column] === "r" ? cell.padStart(widths[column]) : cell.padEnd(widths[column]));
  const line = (cells) => `| ${cells.map(pad).join(" | ")} |`;
  const rule = `| ${widths.map((width, column) => (align[column] === "r" ? `${"-".repeat(width - 1)}:` : "-".repeat(width))).join(" | ")} |`;
  return [line(headers), rule, ...rows.map(line)].join("\n");
}
