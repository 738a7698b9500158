// Progressive enhancement only: every form works without this file.
(function () {
  "use strict";

  // Copy buttons: the Clipboard API where the page is a secure context, else select + execCommand.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      // Refused without a permission (some browsers, headless ones): fall back to the old way.
      return navigator.clipboard.writeText(text).catch(function () { return copyBySelection(text); });
    }
    return copyBySelection(text);
  }

  function copyBySelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    copyText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });

  // Codec order: ↑/↓ buttons move a row and renumber the position fields the form submits.
  function renumber(list) {
    Array.prototype.forEach.call(list.children, function (item, index) {
      var field = item.querySelector("input[type=number]");
      if (field) { field.value = String(index + 1); }
    });
  }
  document.querySelectorAll("ol.codecs").forEach(function (list) {
    list.querySelectorAll("button.move").forEach(function (b) { b.hidden = false; });
    list.addEventListener("click", function (event) {
      var button = event.target.closest("button.move");
      if (!button) { return; }
      var item = button.closest("li");
      if (button.getAttribute("data-move") === "up" && item.previousElementSibling) {
        list.insertBefore(item, item.previousElementSibling);
      } else if (button.getAttribute("data-move") === "down" && item.nextElementSibling) {
        list.insertBefore(item.nextElementSibling, item);
      }
      renumber(list);
      button.focus();  // keyboard users keep their place
    });
  });

  // Add Provider Connection: show only the chosen provider's credential fields.
  var provider = document.getElementById("provider");
  if (provider) {
    var sync = function () {
      document.querySelectorAll("fieldset[data-provider]").forEach(function (set) {
        set.hidden = set.getAttribute("data-provider") !== provider.value;
      });
    };
    provider.addEventListener("change", sync);
    sync();
  }

  // Sign-in link: the one-time code travels in the fragment (never sent to a server); move it
  // into the form and out of the address bar and history.
  var code = document.getElementById("token");
  var match = /[#&]token=([^&]+)/.exec(window.location.hash);
  if (code && match) {
    code.value = decodeURIComponent(match[1]);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    var signIn = document.getElementById("sign-in");
    if (signIn) { signIn.focus(); }
  }

  // A refused form: move focus to the summary so keyboard and screen-reader users hear why.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }

  // Live regions: poll a server-rendered fragment while the data-live flag it returns is "on".
  document.querySelectorAll("[data-live-url]").forEach(function (box) {
    var url = box.getAttribute("data-live-url");
    var every = parseInt(box.getAttribute("data-live-interval"), 10) || 2000;
    var last = box.innerHTML;
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }  // a background tab waits
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (r) {
        if (!r.ok || r.redirected) { return null; }  // signed out or gone: stop quietly
        return r.text();
      }).then(function (html) {
        if (html === null) { return; }
        if (html !== last) { box.innerHTML = html; last = box.innerHTML; }
        var flag = box.querySelector("[data-live]");
        if (flag && flag.getAttribute("data-live") === "on") { setTimeout(tick, every); }
      }).catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  });
})();
