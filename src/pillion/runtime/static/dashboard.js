// Pillion's dashboard: polls /stats (same origin, relative URL) and draws it.
// No framework, no build step; charts are uPlot (vendored next to this file).
// Everything from /stats is put in the page as text (textContent), never as HTML.
"use strict";

(function () {
  const POLL_MS = 3000;
  const charts = new Map(); // "kind/name/metric" -> {plot, element}
  let updates = 0;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function number(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toFixed(digits === undefined ? 1 : digits);
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "0";
    if (value < 0.001) return (value * 1e6).toFixed(0) + " µs";
    if (value < 0.01) return (value * 1000).toFixed(1) + " ms";
    if (value < 1) return (value * 1000).toFixed(0) + " ms";
    return value.toFixed(2) + " s";
  }

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return (i ? value.toFixed(1) : value) + " " + units[i];
  }

  function when(unix, now) {
    if (!unix) return "never";
    const ago = now - unix;
    const text = new Date(unix * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
    return text + " (" + duration(Math.abs(ago)) + (ago >= 0 ? " ago)" : " from now)");
  }

  function duration(s) {
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  function last(values) {
    if (!values) return null;
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  function badge(text, ok) {
    return el("span", { class: "badge " + (ok === true ? "ok" : ok === false ? "bad" : "warn") }, text);
  }

  // -- header and components --

  function drawHeader(stats) {
    $("version").textContent = stats.version;
    const h = stats.health;
    $("health").replaceChildren(
      badge("started", h.started), badge("live", h.live), badge("ready", h.ready),
      h.draining ? badge("draining", null) : "",
    );
    const p = stats.process;
    const up = p.start_time ? "up " + duration(stats.time - p.start_time) : "";
    $("process").textContent = [up, p.resident_memory_bytes ? bytes(p.resident_memory_bytes) + " resident" : "",
      p.cpu_seconds !== null ? number(p.cpu_seconds, 1) + " s CPU" : ""].filter(Boolean).join(" · ");
  }

  function drawComponents(stats) {
    const rows = Object.entries(stats.health.components || {}).map(([name, c]) => {
      const good = c.state === "running" ? true : c.state === "failed" ? false : null;
      return el("tr", { "data-component": name },
        el("td", {}, name),
        el("td", {}, el("span", { class: "state " + (good === true ? "ok" : good === false ? "bad" : "warn") }, c.state)),
        el("td", {}, c.ready ? "yes" : "no"),
        el("td", {}, (c.problems || []).join("; ")));
    });
    fill($("components").tBodies[0], rows);
  }

  // -- traffic charts --

  const METRICS = {
    rate: { title: "per second", series: [["rate", "#2b6cb0"]], value: (v) => number(v, 1) },
    errors: { title: "5xx share %", series: [["errors", "#c53030"]], scale: 100, value: (v) => number(v, 1) },
    latency: { title: "p50 / p99", series: [["p50", "#2f855a"], ["p99", "#b7791f"]], value: seconds },
  };
  const KIND_LABEL = { listener: "listener", route: "route", cluster: "cluster", log_input: "log input", log_output: "log output" };

  function chartFor(key, metric, container, unit) {
    let chart = charts.get(key);
    if (chart) return chart;
    const spec = METRICS[metric];
    const title = metric === "latency"
      ? el("div", { class: "title" }, el("span", { class: "p50" }, "p50"), " / ", el("span", { class: "p99" }, "p99"), " latency")
      : el("div", { class: "title" }, metric === "rate" ? unit : spec.title);
    const element = el("div", { class: "chart", "data-chart": key, "data-points": "0" }, title);
    container.append(element);
    const series = [{}].concat(spec.series.map(([label, stroke]) => ({
      label, stroke, width: 1.5, spanGaps: false,
      value: (u, v) => spec.value(v),
    })));
    const opts = {
      width: 340, height: 110, legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{ size: 22, font: "10px system-ui" },
        { size: 58, font: "10px system-ui", values: metric === "latency"
          ? (u, ticks) => ticks.map(seconds) : undefined }],
      series,
    };
    const empty = [[]].concat(spec.series.map(() => []));
    chart = { plot: new uPlot(opts, empty, element), element, metric };
    charts.set(key, chart);
    return chart;
  }

  function drawTraffic(stats) {
    const history = stats.history;
    const times = history.time;
    $("history-note").textContent = "last " + duration(history.points * history.interval_seconds) +
      ", one point every " + history.interval_seconds + " s" +
      (history.capped ? " · capped at " + history.max_targets + " targets (" + history.dropped_targets + " not shown)" : "");
    const container = $("traffic");
    const seen = new Set();
    const shown = history.series.filter((s) => s.kind !== "log_input" && s.kind !== "log_output");
    $("traffic-empty").hidden = shown.length > 0;
    for (const series of history.series) {
      const id = series.kind + "/" + series.name;
      const parent = series.kind.startsWith("log_") ? $("log-charts") : container;
      if (!parent) continue;
      let box = parent.querySelector('[data-target="' + CSS.escape(id) + '"]');
      if (!box) {
        box = el("div", { class: "target", "data-target": id },
          el("div", { class: "target-head" }, el("b", {}, KIND_LABEL[series.kind] + " " + series.name), el("span", { class: "muted now" })),
          el("div", { class: "charts" }));
        parent.append(box);
      }
      const now = [];
      now.push(number(last(series.rate), 1) + (series.kind.startsWith("log_") ? " lines/s" : " req/s"));
      if (series.errors) now.push(number((last(series.errors) || 0) * 100, 1) + "% 5xx");
      if (series.p50) now.push("p50 " + seconds(last(series.p50)) + ", p99 " + seconds(last(series.p99)));
      box.querySelector(".now").textContent = now.join(" · ");
      const wanted = ["rate"];
      if (series.kind === "listener" || series.kind === "route" || series.kind === "cluster") wanted.push("errors");
      if (series.p50 || series.p99) wanted.push("latency");
      for (const metric of wanted) {
        const key = id + "/" + metric;
        seen.add(key);
        const unit = series.kind.startsWith("log_") ? "lines/s" : "requests/s";
        const chart = chartFor(key, metric, box.querySelector(".charts"), unit);
        const spec = METRICS[metric];
        const columns = spec.series.map(([field]) => (series[field] || times.map(() => null))
          .map((v) => (v === null ? null : spec.scale ? v * spec.scale : v)));
        chart.plot.setData([times].concat(columns));
        const points = columns[0].filter((v) => v !== null).length;
        chart.element.setAttribute("data-points", String(points));
      }
    }
    for (const [key, chart] of charts) {
      if (!seen.has(key)) {
        chart.plot.destroy();
        chart.element.remove();
        charts.delete(key);
      }
    }
    for (const box of document.querySelectorAll(".target")) {
      if (!box.querySelector(".chart")) box.remove();
    }
  }

  // -- clusters --

  function drawClusters(stats) {
    $("clusters-empty").hidden = stats.clusters.length > 0;
    $("clusters").hidden = stats.clusters.length === 0;
    const rows = [];
    for (const c of stats.clusters) {
      const inFlight = Object.entries(c.in_flight).filter(([, v]) => v > 0).map(([k, v]) => k + " " + v).join(", ");
      const endpoints = c.endpoints.length ? c.endpoints : [{ address: "–", state: "no address", ejected_until: null }];
      endpoints.forEach((e, i) => {
        const until = e.ejected_until ? " until " + new Date(e.ejected_until * 1000).toLocaleTimeString() : "";
        const good = e.state === "healthy" ? true : e.state === "ejected" || e.state === "no address" ? false : null;
        const first = i === 0;
        rows.push(el("tr", { class: e.state === "ejected" ? "ejected" : "", "data-cluster": c.name,
          "data-endpoint": e.address, "data-state": e.state },
          el("td", {}, first ? c.name : ""),
          el("td", {}, e.address),
          el("td", {}, badge(e.state + until, good)),
          el("td", { class: "num" }, first ? c.healthy : ""),
          el("td", { class: "num" }, first ? c.ejected : ""),
          el("td", { class: "num" }, first ? c.ejections : ""),
          el("td", { class: "num" }, first ? c.connect_errors : ""),
          el("td", {}, first ? (c.circuit_open.length ? badge(c.circuit_open.join(", "), false) : "closed") : ""),
          el("td", {}, first ? inFlight || "–" : "")));
      });
    }
    fill($("clusters").tBodies[0], rows);
  }

  // -- logs --

  function drawLogs(stats) {
    const logs = stats.logs;
    $("logs-empty").hidden = logs !== null;
    const box = $("logs");
    if (!logs) { box.replaceChildren(); return; }
    if (!$("log-tables")) {
      box.append(el("div", { id: "log-tables" }), el("div", { id: "log-charts" }));
    }
    const b = logs.buffer;
    const share = b.memory_limit_bytes ? Math.min(1, b.memory_bytes / b.memory_limit_bytes) : 0;
    const bar = el("span", { class: "bar" + (b.full ? " full" : "") }, el("div", {}));
    bar.firstChild.style.width = (share * 100).toFixed(1) + "%";
    const inputs = el("table", {}, el("thead", {}, el("tr", {}, ...["input", "lines/s", "lines", "paused", "lag per file"].map((t) => el("th", {}, t)))),
      el("tbody", {}, ...logs.inputs.map((i) => el("tr", {},
        el("td", {}, i.name), el("td", { class: "num" }, number(i.lines_per_second, 1)), el("td", { class: "num" }, i.lines),
        el("td", {}, i.paused ? badge("paused", false) : "no"),
        el("td", {}, i.files.map((f) => f.file + ": " + bytes(f.lag_bytes)).join("; ") || "–")))));
    const outputs = el("table", {}, el("thead", {}, el("tr", {}, ...["output", "lines/s", "lines", "errors", "retries", "dead letters"].map((t) => el("th", {}, t)))),
      el("tbody", {}, ...logs.outputs.map((o) => el("tr", {},
        el("td", {}, o.name), el("td", { class: "num" }, number(o.lines_per_second, 1)), el("td", { class: "num" }, o.lines),
        el("td", { class: "num" }, o.errors), el("td", { class: "num" }, o.retries), el("td", { class: "num" }, o.dead_letters)))));
    $("log-tables").replaceChildren(
      el("p", {}, "Buffer: ", bar, " ", bytes(b.memory_bytes) + " of " + bytes(b.memory_limit_bytes) + " in memory, " +
        bytes(b.disk_bytes) + (b.disk_limit_bytes ? " of " + bytes(b.disk_limit_bytes) : "") + " on disk" + (b.full ? " · FULL: inputs paused" : "")),
      inputs, outputs);
  }

  // -- secrets and config --

  function drawSecretsAndConfig(stats) {
    const c = stats.config;
    const rows = [
      el("p", {}, "Configuration loaded ", when(c.loaded_at, stats.time), " · last reload ",
        badge(c.last_reload_successful ? "succeeded" : "failed", c.last_reload_successful),
        " · " + c.reloads + " reloads, " + c.failed_reloads + " refused"),
    ];
    if (c.watches.length) {
      rows.push(el("table", {}, el("thead", {}, el("tr", {}, ...["watched config", "last change", "changes", "validation failures"].map((t) => el("th", {}, t)))),
        el("tbody", {}, ...c.watches.map((w) => el("tr", {}, el("td", {}, w.name), el("td", {}, when(w.last_change, stats.time)),
          el("td", { class: "num" }, w.changes), el("td", { class: "num" }, w.validation_failures))))));
    }
    $("config").replaceChildren(...rows);
    const s = stats.secrets;
    if (!s) { $("secrets").replaceChildren(el("p", { class: "muted" }, "No secrets configured.")); return; }
    $("secrets").replaceChildren(
      el("table", {}, el("thead", {}, el("tr", {}, ...["template", "last render", "renders", "failed"].map((t) => el("th", {}, t)))),
        el("tbody", {}, ...s.templates.map((t) => el("tr", {}, el("td", {}, t.name), el("td", {}, when(t.last_render, stats.time)),
          el("td", { class: "num" }, t.renders), el("td", { class: "num" }, t.failed_renders))))),
      el("table", {}, el("thead", {}, el("tr", {}, ...["source", "lease ends", "time left", "state"].map((t) => el("th", {}, t)))),
        el("tbody", {}, ...s.sources.map((src) => el("tr", {}, el("td", {}, src.name),
          el("td", {}, src.lease_expiry ? when(src.lease_expiry, stats.time) : "no lease"),
          el("td", {}, src.lease_ttl_seconds !== null ? duration(Math.max(0, src.lease_ttl_seconds)) : "–"),
          el("td", {}, src.stale ? badge("stale: source failing", false) : badge("fresh", true)))))));
  }

  // -- recent errors --

  function drawErrors(stats) {
    const records = stats.recent_errors.slice().reverse();
    $("errors-note").textContent = records.length
      ? "(" + records.length + " shown of " + stats.recent_errors_seen + " since start)" : "(none)";
    fill($("errors").tBodies[0], records.map((r) => el("tr", {},
      el("td", {}, r.time), el("td", { class: "level-" + r.level }, r.level), el("td", {}, r.component),
      el("td", {}, r.message),
      el("td", {}, Object.entries(r.fields).map(([k, v]) => k + "=" + v).join(" ")))));
  }

  // -- polling --

  function draw(stats) {
    drawHeader(stats);
    drawComponents(stats);
    drawClusters(stats);
    drawLogs(stats);
    drawTraffic(stats);
    drawSecretsAndConfig(stats);
    drawErrors(stats);
    updates++;
    const updated = $("updated");
    updated.textContent = "updated " + new Date(stats.time * 1000).toLocaleTimeString();
    updated.setAttribute("data-updates", String(updates));
    updated.classList.remove("bad");
  }

  async function poll() {
    try {
      const response = await fetch("stats", { credentials: "omit", cache: "no-store" });
      if (!response.ok) throw new Error("/stats answered " + response.status);
      draw(await response.json());
    } catch (error) {
      const updated = $("updated");
      updated.textContent = "cannot read /stats: " + error.message;
      updated.classList.add("bad");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
