// 紧急插播: refresh the delivery counts, latency and the marks of each box and networked village from /alerts/<id>.json.
(function () {
  "use strict";
  var box = document.getElementById("delivery");
  var info = document.getElementById("refreshed");
  if (!box || !window.fetch) { return; }
  var every = Math.max(1, parseInt(box.getAttribute("data-every"), 10) || 2) * 1000;
  var left = Math.ceil(30 * 60 * 1000 / every); // stop after 30 minutes; reload the page to watch longer

  function mark(cell, on, yes, no) {
    var badge = cell.querySelector(".badge");
    badge.textContent = on ? yes : no;
    badge.className = on ? "badge played" : "badge";
  }

  function draw(data) {
    Object.keys(data.counts).forEach(function (k) {
      var b = box.querySelector('[data-count="' + k + '"]');
      if (b) { b.textContent = String(data.counts[k]); }
    });
    Object.keys(data.latency_s).forEach(function (k) {
      var b = box.querySelector('[data-latency="' + k + '"]');
      var v = data.latency_s[k];
      if (b) { b.textContent = v === null ? "—" : String(v); }
    });
    document.querySelectorAll("#targets [data-station]").forEach(function (row) {
      var id = row.getAttribute("data-station");
      mark(row.querySelector('[data-part="delivered"]'), data.delivered.indexOf(id) >= 0, "已收到", "未收到");
      mark(row.querySelector('[data-part="played"]'), data.played.indexOf(id) >= 0, "已播出", "未播出");
    });
    if (info) { info.textContent = "已刷新 " + data.at; }
    return data.expired || data.counts.played >= data.counts.targets;
  }

  function tick() {
    left -= 1;
    fetch(box.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) { if (!draw(data) && left > 0) { setTimeout(tick, every); } })
      .catch(function () { if (info) { info.textContent = "刷新失败，稍后重试"; } if (left > 0) { setTimeout(tick, every * 3); } });
  }
  setTimeout(tick, every);
}());
