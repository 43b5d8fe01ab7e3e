// The console's little script: charts (Chart.js, from npm), the live view's refresh and the
// trace timeline. Every page works without it: tables hold the data the charts draw.
"use strict";

function drawChart() {
  const data = document.getElementById("chart-data");
  const canvas = document.getElementById("chart");
  if (!data || !canvas || typeof window.Chart === "undefined") return;
  const spec = JSON.parse(data.textContent);
  const pie = spec.type === "pie" || spec.type === "doughnut";
  const chart = new window.Chart(canvas, {
    type: spec.type,
    data: {
      labels: spec.labels,
      datasets: spec.datasets.map((d) => ({
        ...d,
        fill: false,
        tension: 0.2,
        pointRadius: spec.type === "line" ? 2 : undefined,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { legend: { position: pie ? "right" : "bottom" } },
      scales: pie ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
  canvas.dataset.drawn = "true";
  window.postlineChart = chart;
}

function shown(value) {
  // 2026-11-01T09:30:00.000+09:00 -> 2026-11-01 09:30:00 (already in the viewer's zone)
  return value && value.length >= 19 ? value.slice(0, 10) + " " + value.slice(11, 19) : value || "";
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function liveView() {
  const table = document.getElementById("live");
  if (!table) return;
  const words = JSON.parse(document.getElementById("status-words").textContent);
  const updated = document.getElementById("live-updated");
  const every = Number(table.dataset.every || "5") * 1000;
  async function refresh() {
    try {
      const response = await fetch(table.dataset.api, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(String(response.status));
      const answer = await response.json();
      const body = document.createElement("tbody");
      for (const row of answer.results) {
        const tr = document.createElement("tr");
        tr.append(cell(shown(row.created), "nowrap"), cell(shown(row.updated), "nowrap"));
        const to = document.createElement("td");
        const link = document.createElement("a");
        link.href = "/deliveries/" + encodeURIComponent(row.deliveryId);
        link.textContent = row.to;
        to.append(link);
        const status = document.createElement("td");
        const badge = document.createElement("span");
        badge.className = "status status-" + row.status;
        badge.dataset.status = row.status;
        badge.textContent = words[row.status] || row.status;
        status.append(badge);
        tr.append(to, cell(row.subject), status, cell(row.reason, "reason"));
        body.append(tr);
      }
      if (!answer.results.length) {
        const tr = document.createElement("tr");
        tr.className = "empty-row";
        const td = cell(table.dataset.empty, "empty");
        td.colSpan = 6;
        tr.append(td);
        body.append(tr);
      }
      table.replaceChild(body, table.tBodies[0]);
      table.dataset.refreshed = String(Number(table.dataset.refreshed || "0") + 1);
      updated.textContent = new Date().toLocaleTimeString();
    } catch (error) {
      updated.textContent = "⚠ " + error.message;
    }
  }
  window.setInterval(refresh, every);
}

function instant(value) {
  if (typeof value === "number") {
    if (value > 1e17) return value / 1e6;
    if (value > 1e14) return value / 1e3;
    if (value > 1e11) return value;
    return value * 1000;
  }
  return Date.parse(value);
}

function svg(name, attributes) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, value);
  return element;
}

function drawTimeline(section, spans) {
  const starts = spans.map((s) => instant(s.start));
  const ends = spans.map((s, i) => Math.max(instant(s.end), starts[i]));
  const first = Math.min(...starts);
  const total = Math.max(1, Math.max(...ends) - first);
  const rowHeight = 26;
  const labelWidth = 38; // percent of the width for labels
  const chart = svg("svg", {
    class: "timeline",
    role: "img",
    "aria-label": section.dataset.label || "trace",
    viewBox: `0 0 1000 ${spans.length * rowHeight + 10}`,
    preserveAspectRatio: "none",
  });
  spans.forEach((span, i) => {
    const y = i * rowHeight + 5;
    const label = svg("text", { x: 4, y: y + 17, class: "span-label" });
    label.textContent = `${span.service} · ${span.name}`;
    const x = labelWidth * 10 + ((starts[i] - first) / total) * (1000 - labelWidth * 10 - 10);
    const width = Math.max(2, ((ends[i] - starts[i]) / total) * (1000 - labelWidth * 10 - 10));
    const bar = svg("rect", { x, y: y + 4, width, height: rowHeight - 10, rx: 3, class: "span-bar" });
    const title = svg("title");
    title.textContent = `${span.service} ${span.name}: ${Math.round(ends[i] - starts[i])} ms` +
      (span.links && span.links.length ? ` (${span.links.length} links)` : "");
    bar.append(title);
    chart.append(label, bar);
  });
  section.querySelector(".trace-status").textContent = "";
  section.append(chart);
  section.dataset.drawn = "true";
}

async function traceTimeline() {
  const section = document.getElementById("trace");
  if (!section || !section.dataset.traceId) return;
  const status = section.querySelector(".trace-status");
  try {
    const response = await fetch("/api/v1/traces/" + encodeURIComponent(section.dataset.traceId), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(String(response.status));
    const answer = await response.json();
    const spans = Array.isArray(answer) ? answer : answer.spans || answer.results || [];
    if (!spans.length) throw new Error("empty");
    drawTimeline(section, spans);
  } catch (error) {
    status.textContent = section.dataset.none;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawChart();
  liveView();
  traceTimeline();
});
