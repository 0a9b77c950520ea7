// The script editor: show the spoken form (what the voice will say) while the text is typed.
(function () {
  "use strict";
  var text = document.getElementById("text");
  var out = document.getElementById("spoken");
  if (!text || !out || !window.fetch) { return; }
  var timer = null;
  var asked = 0;

  function draw(pieces) {
    var frag = document.createDocumentFragment();
    pieces.forEach(function (p) {
      if (p[1]) {
        var mark = document.createElement("mark");
        mark.textContent = p[0];
        frag.appendChild(mark);
      } else {
        frag.appendChild(document.createTextNode(p[0]));
      }
    });
    out.replaceChildren(frag);
  }

  function update() {
    var mine = ++asked;
    fetch("/spoken?text=" + encodeURIComponent(text.value), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && mine === asked) { draw(data.pieces); out.setAttribute("data-for", text.value); } })
      .catch(function () {});
  }
  text.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(update, 250);
  });
})();
