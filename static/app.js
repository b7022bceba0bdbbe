// audit-timeline dashboard behaviour. Loaded as a file (strict CSP: no inline scripts).
// Everything here is progressive: without JavaScript, links and GET forms still work.
(function () {
  "use strict";

  var FOLLOW_MS = 5000;
  var followTimer = null;

  function toast(message) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var div = document.createElement("div");
    div.className = "toast";
    div.setAttribute("role", "alert");
    div.textContent = message; // textContent: never HTML
    var close = document.createElement("button");
    close.type = "button";
    close.className = "dismiss";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    div.appendChild(close);
    box.replaceChildren(div);
  }

  // Drop empty parameters so pushed URLs stay short and shareable.
  document.addEventListener("htmx:configRequest", function (event) {
    var data = event.detail.formData;
    if (!data) return;
    var keys = [];
    data.forEach(function (value, key) { if (keys.indexOf(key) < 0) keys.push(key); });
    keys.forEach(function (key) {
      var kept = data.getAll(key).filter(function (v) { return v !== ""; });
      data.delete(key);
      kept.forEach(function (v) { data.append(key, v); });
    });
  });

  // Picker search boxes filter their list in place: their typing is not a filter change.
  function filterPicker(search) {
    var needle = search.value.trim().toLowerCase();
    var list = search.closest(".picker").querySelector(".picker-options");
    list.querySelectorAll("li").forEach(function (item) {
      item.hidden = needle !== "" && item.textContent.toLowerCase().indexOf(needle) < 0;
    });
  }
  ["input", "change", "keydown"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var target = event.target;
      if (!(target instanceof Element) || !target.classList.contains("picker-search")) return;
      if (type === "keydown") {
        if (event.key === "Enter") event.preventDefault(); // not a form submit
        return;
      }
      event.stopPropagation(); // keeps htmx's form trigger from seeing it
      filterPicker(target);
    }, true);
  });

  // The filter form is replaced after each change: keep open pickers open, their search text,
  // and the focus, so several values can be ticked in a row.
  var pickerState = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "timeline") return;
    var active = document.activeElement;
    pickerState = {
      open: Array.prototype.map.call(document.querySelectorAll("details.picker[open]"), function (d) {
        var search = d.querySelector(".picker-search");
        return { id: d.id, search: search ? search.value : "" };
      }),
      focus: active && active.closest && active.closest(".picker") && active.name
        ? { name: active.name, value: active.value } : null
    };
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (!pickerState) return;
    var state = pickerState;
    pickerState = null;
    state.open.forEach(function (saved) {
      var details = document.getElementById(saved.id);
      if (!details) return;
      details.open = true;
      var search = details.querySelector(".picker-search");
      if (search && saved.search) { search.value = saved.search; filterPicker(search); }
    });
    if (state.focus) {
      var selector = 'input[name="' + CSS.escape(state.focus.name) + '"][value="' + CSS.escape(state.focus.value) + '"]';
      var again = document.querySelector(".picker " + selector);
      if (again) again.focus();
    }
  });

  // Close an open picker when clicking elsewhere or pressing Escape.
  document.addEventListener("click", function (event) {
    var inside = event.target instanceof Element ? event.target.closest("details.picker") : null;
    document.querySelectorAll("details.picker[open]").forEach(function (d) {
      if (d !== inside) d.open = false;
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = event.target instanceof Element ? event.target.closest("details.picker[open]") : null;
    if (open) { open.open = false; open.querySelector("summary").focus(); }
  });

  // Results that arrive clear the error toasts of the requests before them (an error toast
  // is itself a 200 response retargeted to #toasts, so it does not clear itself).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || (target.id !== "timeline" && target.id !== "results")) return;
    if (!event.detail.shouldSwap) return;
    var box = document.getElementById("toasts");
    if (box) box.replaceChildren();
  });

  document.addEventListener("htmx:sendError", function () {
    toast("The server did not answer. Check that audit-timeline is running, then try again.");
  });
  document.addEventListener("htmx:responseError", function (event) {
    toast("The server answered " + event.detail.xhr.status + ". Try again, or reload the page.");
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var dismiss = target.closest(".toast .dismiss");
    if (dismiss) { dismiss.closest(".toast").remove(); return; }
    var unfold = target.closest("button.unfold");
    if (unfold) {
      var fold = unfold.getAttribute("data-fold");
      var table = unfold.closest("table");
      table.querySelectorAll('tr[data-fold="' + CSS.escape(fold) + '"]').forEach(function (row) {
        row.hidden = false;
      });
      unfold.closest("tr").remove();
    }
  });

  // Follow: re-fetch the newest events of the current view while switched on.
  function setFollowing(on) {
    var button = document.getElementById("follow");
    var status = document.getElementById("follow-status");
    if (!button) return;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Pause" : "Follow live";
    if (status) status.textContent = on ? "Following: newest events every 5 s" : "";
    if (followTimer) { clearInterval(followTimer); followTimer = null; }
    if (on) {
      followTimer = setInterval(refreshResults, FOLLOW_MS);
      refreshResults();
    }
  }

  function refreshResults() {
    if (document.hidden || !document.getElementById("results")) return;
    var active = document.activeElement;
    if (active && active.closest && active.closest("#filters")) return; // user is editing
    // Reading further down (perhaps pages loaded by scrolling): a refresh would replace them.
    var status = document.getElementById("follow-status");
    if (window.scrollY > 400) {
      if (status) status.textContent = "Following: paused while you read further down";
      return;
    }
    if (status) status.textContent = "Following: newest events every 5 s";
    htmx.ajax("GET", window.location.pathname + window.location.search, {
      target: "#results", swap: "outerHTML", select: "#results"
    });
  }

  function initFollow() {
    var button = document.getElementById("follow");
    if (!button || button.dataset.ready) return;
    button.dataset.ready = "1";
    button.hidden = false;
    button.addEventListener("click", function () {
      setFollowing(button.getAttribute("aria-pressed") !== "true");
    });
  }

  // j / k move between events; Enter follows the focused link natively.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var el = event.target;
    if (el instanceof Element && el.closest("input, select, textarea, [contenteditable]")) return;
    if (event.key !== "j" && event.key !== "k") return;
    var links = Array.prototype.slice.call(document.querySelectorAll("tr.event a.open, li.entry a.open"));
    if (!links.length) return;
    var index = links.indexOf(document.activeElement);
    index = event.key === "j" ? Math.min(index + 1, links.length - 1) : Math.max(index - 1, 0);
    links[index].focus();
    links[index].closest("tr, li").scrollIntoView({ block: "nearest" });
    event.preventDefault();
  });

  function initPickers() {
    document.querySelectorAll(".picker-search[hidden]").forEach(function (search) {
      search.hidden = false; // useful only with JavaScript
    });
  }

  function init() { initFollow(); initPickers(); }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:load", init);
})();
