// 今天: refresh the counts and the programme table from /today.json without reloading the page.
(function () {
  "use strict";
  var info = document.getElementById("refreshed");
  if (!info || !window.fetch) { return; }
  var every = Math.max(5, parseInt(info.getAttribute("data-every"), 10) || 30) * 1000;
  var PROBLEMS = { failed: 1, missed: 1, interrupted: 1 };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function cell(label, child, cls) {
    var td = el("td", { "data-label": label });
    if (cls) { td.className = cls; }
    if (typeof child === "string") { td.textContent = child; } else if (child) { td.appendChild(child); }
    return td;
  }

  function drawScheduler(s) {
    var banner = document.getElementById("scheduler-down");
    if (!banner || !s) { return; }
    banner.querySelector('[data-part="message"]').textContent = s.message || "";
    banner.querySelector('[data-part="fix"]').textContent = s.fix || "";
    banner.hidden = !!s.up;
  }

  function slotRow(s) {
    var tr = el("tr", { "class": "st-" + s.status });
    var village = el("td", { "data-label": "村" });
    village.appendChild(el("a", { href: "/villages/" + encodeURIComponent(s.village_id) }, s.village));
    village.appendChild(document.createTextNode(" "));
    village.appendChild(el("span", { "class": "muted small" }, s.township));
    tr.appendChild(village);
    tr.appendChild(cell("时段", s.slot_label + " " + s.start));
    tr.appendChild(cell("状态", el("span", { "class": "badge " + s.status }, s.status_label)));
    tr.appendChild(cell("原因", s.reason ? el("span", { "class": "warn" }, s.reason) : s.scripts.join("、"), "small"));
    var last = cell("上次成功", s.last_success || "从未", "small");
    if (s.last_entered) {  // a confirmation: when it aired above, when it was typed in below
      last.appendChild(el("br"));
      last.appendChild(el("span", { "class": "muted" }, "录入于 " + s.last_entered));
    }
    tr.appendChild(last);
    var box = s.online === null ? el("span", { "class": "muted" }, "无")
      : el("span", { "class": "badge " + (s.online ? "played" : "failed") }, s.online ? "在线" : "离线");
    tr.appendChild(cell("播放盒", box, "small"));
    return tr;
  }

  function fill(body, slots, emptyText) {
    var rows = document.createDocumentFragment();
    slots.forEach(function (s) { rows.appendChild(slotRow(s)); });
    if (!slots.length && emptyText) {
      var empty = el("tr");
      empty.appendChild(el("td", { colspan: "6", "class": "empty" }, emptyText));
      rows.appendChild(empty);
    }
    body.replaceChildren(rows);
  }

  // The folds of programs that need nothing, by township: a fold the user opened stays open.
  function drawFolds(folds, slots) {
    var box = document.getElementById("fine");
    if (!box) { return; }
    var bySlot = {};
    slots.forEach(function (s) { bySlot[s.village_id + "/" + s.slot] = s; });
    var old = {};
    box.querySelectorAll("details.fold").forEach(function (d) { old[d.getAttribute("data-key")] = d; });
    var out = document.createDocumentFragment();
    folds.forEach(function (f) {
      var fold = old[f.key];
      if (!fold) {
        fold = el("details", { "class": "fold", "data-key": f.key });
        var summary = el("summary");
        summary.appendChild(el("b", {}, f.title));
        summary.appendChild(document.createTextNode(" "));
        summary.appendChild(el("span", { "class": "fold-sum" }));
        fold.appendChild(summary);
        var table = el("table", { "class": "cards" });
        table.appendChild(document.querySelector("#problems thead").cloneNode(true));
        table.appendChild(el("tbody"));
        fold.appendChild(table);
      }
      fold.querySelector(".fold-sum").textContent = f.summary;
      fill(fold.querySelector("tbody"), f.programs.map(function (k) { return bySlot[k]; }).filter(Boolean), "");
      out.appendChild(fold);
    });
    if (!folds.length) { out.appendChild(el("p", { "class": "empty" }, "没有别的节目。")); }
    box.replaceChildren(out);
  }

  function draw(data) {
    drawScheduler(data.scheduler);
    Object.keys(data.totals).concat(["failed", "missed", "interrupted", "planned", "played", "exported", "confirmed"])
      .forEach(function (st) {
        var box = document.querySelector('#totals [data-status="' + st + '"]');
        if (!box) { return; }
        var n = data.totals[st] || 0;
        box.querySelector("b").textContent = String(n);
        box.className = PROBLEMS[st] && n ? "warn" : "";
      });
    var slots = document.getElementById("slots");
    var problems = data.slots.filter(function (s) { return PROBLEMS[s.status]; });
    fill(document.querySelector("#problems tbody"), problems,
      slots.getAttribute(data.slots.length ? "data-empty" : "data-none"));
    drawFolds(data.folds || [], data.slots);
    info.textContent = "已刷新 " + data.at;
    info.setAttribute("data-refreshed", data.at);
  }

  function tick() {
    fetch(info.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(draw)
      .catch(function () { info.textContent = "刷新失败，稍后重试"; });
  }
  setInterval(tick, every);
  window.outreachRefreshToday = tick;
})();
