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
    var body = document.querySelector("#slots tbody");
    var rows = document.createDocumentFragment();
    data.slots.forEach(function (s) {
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
      rows.appendChild(tr);
    });
    if (!data.slots.length) {
      var empty = el("tr");
      empty.appendChild(el("td", { colspan: "6", "class": "empty" }, info.getAttribute("data-empty")));
      rows.appendChild(empty);
    }
    body.replaceChildren(rows);
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
