// The metalab report page: draws the data embedded by metalab.report.build_report.
// Every text from the store goes into the page through textContent (never innerHTML),
// and the Plotly labels arrive escaped, so no name in a store can add markup.
// window.metalabReady becomes true once the table and the first 12 plots are drawn
// (later ones draw when scrolled near), and window.metalabReadyAt holds when (ms since
// navigation began).
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("metalab-data").textContent);
  const PAGE_SIZE = 100;
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  // The first plots are drawn at once; later ones when scrolled near, so that a store
  // of many metrics and params still opens quickly (each plot takes ~0.1-0.2 s).
  const EAGER_PLOTS = 12;
  let plotted = 0;
  const drawing = [];
  const later = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      later.unobserve(entry.target);
      const figure = entry.target.pendingFigure;
      delete entry.target.pendingFigure;
      if (figure) Plotly.newPlot(entry.target, figure.data, figure.layout, PLOT_CONFIG);
    }
  }, { rootMargin: "400px" });

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function show(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function pairs(dl, entries) {
    for (const [key, value] of entries) {
      if (value === null || value === undefined || value === "") continue;
      const dd = el("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = show(value);
      dl.append(el("dt", { text: key }), dd);
    }
  }

  function pretty(value) {
    return el("pre", { text: JSON.stringify(value, null, 2) });
  }

  // -- overview -------------------------------------------------------------------
  function drawOverview() {
    document.getElementById("title").textContent = DATA.title;
    document.getElementById("subtitle").textContent = "store: " + DATA.store;
    const counts = DATA.counts;
    const box = document.getElementById("counts");
    for (const [key, label] of [["done", "done"], ["failed", "failed"], ["pending", "pending"], ["total", "total runs"], ["verified", "verified identical"]]) {
      box.append(el("div", { class: "count " + key, id: "count-" + key }, [
        el("b", { text: counts[key] === null ? "?" : String(counts[key]) }), label,
      ]));
    }
    const exp = DATA.experiment;
    const op = exp.operation || {};
    pairs(document.getElementById("experiment"), [
      ["name", exp.name],
      ["version", exp.version],
      ["operation", [op.module, op.name].filter(Boolean).join(".") + (op.version ? " (version " + op.version + ")" : "")],
      ["code sha256", op.code_sha256],
      ["parameter space", exp.params === null ? null : pretty(exp.params)],
      ["seed plan", exp.seeds === null ? null : pretty(exp.seeds)],
      ["tags", exp.tags.length ? exp.tags.join(", ") : null],
      ["metadata", Object.keys(exp.metadata).length ? pretty(exp.metadata) : null],
      ["metalab", exp.metalab_version],
    ]);
    const prov = DATA.provenance;
    const git = prov.git;
    let gitText = "not a git work tree";
    if (git) {
      gitText = git.error ? "error: " + git.error
        : (git.commit || "?") + (git.branch ? " on " + git.branch : "") + (git.dirty ? " (dirty: uncommitted changes)" : " (clean)");
    }
    const keyPackages = Object.entries(prov.key_packages).map(([n, v]) => n + " " + v).join(", ");
    const all = el("details", {}, [
      el("summary", { text: Object.keys(prov.packages).length + " packages" }),
      el("pre", { text: Object.entries(prov.packages).map(([n, v]) => n + "==" + v).join("\n") }),
    ]);
    const hosts = Object.entries(prov.hosts).map(([h, n]) => h + " (" + n + " runs)").join(", ");
    pairs(document.getElementById("provenance"), [
      ["recorded", prov.timestamp],
      ["git", gitText],
      ["python", prov.python],
      ["platform", prov.platform],
      ["metalab", prov.metalab],
      ["key packages", keyPackages || null],
      ["all packages", Object.keys(prov.packages).length ? all : null],
      ["hosts", hosts || null],
    ]);
  }

  // -- plots ----------------------------------------------------------------------
  function plotCard(container, id, figure, controls) {
    const div = el("div", { class: "plot", id: id });
    container.append(el("div", { class: "plot-card" }, [...controls, div]));
    plotted += 1;
    if (plotted <= EAGER_PLOTS) {
      drawing.push(Plotly.newPlot(div, figure.data, figure.layout, PLOT_CONFIG));
    } else {
      div.pendingFigure = figure;
      later.observe(div);
    }
    return div;
  }

  function drawMetricPlots() {
    const box = document.getElementById("metric-plots");
    if (!DATA.metric_plots.length) {
      box.append(el("p", { class: "note", text: "No successful run has a metric yet." }));
      return;
    }
    DATA.metric_plots.forEach((plot, index) => {
      const splits = Object.keys(plot.figures).filter((name) => name !== "");
      const select = el("select", { "aria-label": "split by" }, [el("option", { value: "", text: "none" })]);
      for (const name of splits) select.append(el("option", { value: name, text: name }));
      const controls = splits.length ? [el("label", {}, ["split by ", select])] : [];
      const div = plotCard(box, "metric-plot-" + index, plot.figures[""], controls);
      div.dataset.metric = plot.metric;
      div.dataset.param = plot.param;
      select.addEventListener("change", () => {
        const figure = plot.figures[select.value];
        delete div.pendingFigure;  // drawn now, whether or not it was drawn before
        Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
      });
    });
  }

  function drawStepPlots() {
    const box = document.getElementById("step-plots");
    if (!DATA.step_plots.length) {
      box.append(el("p", { class: "note", text: "No run logged a per-step metric (capture.metric(name, value, step=...))." }));
      return;
    }
    DATA.step_plots.forEach((plot, index) => {
      const toggle = el("input", { type: "checkbox" });
      const what = plot.by === "case" ? "one curve per case" : plot.by ? "one curve per value of " + plot.by : "one curve of all runs";
      const controls = [
        el("p", { class: "note", text: plot.runs_counted + " runs" +
          (plot.sampled ? " (at most " + plot.read_limit + " a curve, evenly spread over its runs)" : "") +
          "; " + what + "." }),
        el("label", {}, [toggle, " show individual runs (up to " + plot.runs.length + ")"]),
      ];
      const div = plotCard(box, "step-plot-" + index, plot.figure, controls);
      div.dataset.series = plot.name;
      const base = plot.figure.data.length;
      toggle.addEventListener("change", () => {
        if (toggle.checked) {
          Plotly.addTraces(div, plot.runs.map((run) => ({
            x: run.x, y: run.y, mode: "lines", name: run.run_id.slice(0, 12),
            legendgroup: run.curve, showlegend: false, opacity: 0.35, line: { width: 1, color: run.color },
          })));
        } else {
          const extra = [];
          for (let i = base; i < div.data.length; i++) extra.push(i);
          Plotly.deleteTraces(div, extra);
        }
      });
    });
  }

  // -- runs table -----------------------------------------------------------------
  function drawTable() {
    const { columns, roles, rows } = DATA.table;
    const numeric = columns.map((_, c) => rows.every((row) => row[c] === null || typeof row[c] === "number"));
    const state = { sort: null, descending: false, page: 0, view: rows.map((_, i) => i) };
    const filters = [];
    const box = document.getElementById("filters");

    const statusColumn = columns.indexOf("status");
    const status = el("select", { id: "filter-status" }, [el("option", { value: "", text: "any" })]);
    for (const value of ["success", "failed"]) status.append(el("option", { value: value, text: value }));
    box.append(el("label", {}, ["status", status]));
    filters.push((row) => !status.value || row[statusColumn] === status.value);

    const idColumn = columns.indexOf("run_id");
    const idInput = el("input", { id: "filter-run-id", class: "wide", placeholder: "prefix" });
    box.append(el("label", {}, ["run ID", idInput]));
    filters.push((row) => !idInput.value || String(row[idColumn]).startsWith(idInput.value.trim()));

    columns.forEach((name, c) => {
      if (roles[c] === "param") {
        const values = [...new Set(rows.map((row) => show(row[c])))].sort();
        let control;
        if (values.length <= 200) {
          control = el("select", { dataset: { param: name } }, [el("option", { value: "", text: "any" })]);
          for (const value of values) control.append(el("option", { value: value, text: value }));
          filters.push((row) => control.value === "" || show(row[c]) === control.value);
        } else {
          control = el("input", { dataset: { param: name }, placeholder: "contains" });
          filters.push((row) => !control.value || show(row[c]).includes(control.value));
        }
        box.append(el("label", {}, [name, control]));
      } else if (roles[c] === "metric") {
        const low = el("input", { type: "number", step: "any", placeholder: "min", dataset: { metric: name, bound: "min" } });
        const high = el("input", { type: "number", step: "any", placeholder: "max", dataset: { metric: name, bound: "max" } });
        filters.push((row) => {
          if (low.value === "" && high.value === "") return true;
          const value = row[c];
          if (typeof value !== "number") return false;
          return (low.value === "" || value >= Number(low.value)) && (high.value === "" || value <= Number(high.value));
        });
        box.append(el("label", {}, [name + " min", low]), el("label", {}, [name + " max", high]));
      }
    });
    const reset = el("button", { type: "button", id: "filter-reset", text: "clear filters" });
    box.append(reset);

    const head = document.querySelector("#runs-table thead");
    const headRow = el("tr");
    const headers = columns.map((name, c) => {
      const th = el("th", { scope: "col", "aria-sort": "none" }, [
        el("button", { type: "button", text: name, onclick: () => sortBy(c) }),
      ]);
      headRow.append(th);
      return th;
    });
    head.append(headRow);

    function compare(a, b) {
      if (a === b) return 0;
      if (a === null) return 1;  // empty cells last, whichever the direction
      if (b === null) return -1;
      if (typeof a === "number" && typeof b === "number") return a - b;
      if (typeof a === "number") return -1;
      if (typeof b === "number") return 1;
      return String(a).localeCompare(String(b), undefined, { numeric: true });
    }

    function sortBy(c) {
      state.descending = state.sort === c ? !state.descending : false;
      state.sort = c;
      headers.forEach((th, i) => th.setAttribute("aria-sort", i !== c ? "none" : state.descending ? "descending" : "ascending"));
      update(false);
    }

    function update(refilter) {
      if (refilter) {
        state.view = [];
        for (let i = 0; i < rows.length; i++) if (filters.every((keep) => keep(rows[i]))) state.view.push(i);
        state.page = 0;
      }
      if (state.sort !== null) {
        const c = state.sort;
        const sign = state.descending ? -1 : 1;
        state.view.sort((i, j) => {
          const a = rows[i][c], b = rows[j][c];
          if (a === null || b === null) return compare(a, b);
          return sign * compare(a, b) || i - j;
        });
      }
      render();
    }

    function render() {
      const pages = Math.max(1, Math.ceil(state.view.length / PAGE_SIZE));
      state.page = Math.min(state.page, pages - 1);
      const body = document.querySelector("#runs-table tbody");
      const fragment = document.createDocumentFragment();
      for (const i of state.view.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)) {
        const row = rows[i];
        const tr = el("tr", { class: statusColumn >= 0 ? String(row[statusColumn]) : "" });
        row.forEach((value, c) => {
          const td = el("td", { text: show(value) });
          if (numeric[c]) td.className = "num";
          if (c === statusColumn) td.className = "status";
          if (c === idColumn) td.title = String(value);
          tr.append(td);
        });
        fragment.append(tr);
      }
      body.replaceChildren(fragment);
      document.getElementById("runs-count").textContent =
        state.view.length + " of " + rows.length + " runs" + (state.view.length > PAGE_SIZE ? ", " + PAGE_SIZE + " a page" : "");
      document.getElementById("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
      document.getElementById("page-prev").disabled = state.page === 0;
      document.getElementById("page-next").disabled = state.page >= pages - 1;
    }

    for (const control of box.querySelectorAll("select, input")) {
      control.addEventListener(control.tagName === "SELECT" ? "change" : "input", () => update(true));
    }
    reset.addEventListener("click", () => {
      for (const control of box.querySelectorAll("select, input")) control.value = "";
      update(true);
    });
    document.getElementById("page-prev").addEventListener("click", () => { state.page -= 1; render(); });
    document.getElementById("page-next").addEventListener("click", () => { state.page += 1; render(); });
    render();
  }

  // -- failures and figures -------------------------------------------------------
  function drawFailures() {
    const box = document.getElementById("failure-groups");
    if (!DATA.failures.length) {
      box.append(el("p", { class: "note", text: "No run failed." }));
      return;
    }
    for (const group of DATA.failures) {
      const messages = el("ul");
      for (const [message, count] of group.messages) messages.append(el("li", { text: count + " \u00d7 " + message }));
      if (group.more_messages) messages.append(el("li", { text: "and " + group.more_messages + " other messages" }));
      const more = group.count > group.run_ids.length ? " and " + (group.count - group.run_ids.length) + " more" : "";
      box.append(el("div", { class: "failure", dataset: { type: group.type } }, [
        el("h3", { text: group.count + " \u00d7 " + group.type }),
        messages,
        el("p", {}, ["runs: ", el("code", { text: group.run_ids.join(", ") + more })]),
        el("details", {}, [el("summary", { text: "traceback of run " + group.run_ids[0] }), el("pre", { text: group.traceback || "(no traceback recorded)" })]),
      ]));
    }
  }

  function drawFigures() {
    const { shown, left_out: leftOut, limit } = DATA.figures;
    const note = document.getElementById("figures-note");
    note.textContent = shown.length
      ? shown.length + " figure(s) captured with capture.figure" + (leftOut ? "; " + leftOut + " more not shown (at most " + limit + ", each under 2 MiB)" : "") + "."
      : "No run captured a figure (capture.figure).";
    const box = document.getElementById("figure-list");
    for (const figure of shown) {
      box.append(el("figure", {}, [
        el("img", { src: figure.src, alt: figure.name }),
        el("figcaption", { text: figure.name + " \u2014 run " + figure.run_id.slice(0, 12) + " " + figure.params }),
      ]));
    }
  }

  drawOverview();
  drawTable();
  drawFailures();
  drawFigures();
  drawMetricPlots();
  drawStepPlots();
  Promise.all(drawing).then(() => {
    window.metalabReadyAt = performance.now();  // ms since the page began to load
    window.metalabReady = true;
    document.body.dataset.ready = "true";
  });
})();
