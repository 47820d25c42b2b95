// What htmx does not do by itself: the live pages' polling (every interval while shown, ten
// times less often while hidden), bringing new rows into a list, the hidden tab's title and
// favicon, desktop notifications of new errors, short filter URLs, and copying payloads.
(function () {
  "use strict";

  // --- Polling: one request per page per interval, never stopping while the page is open.
  var timer = null;

  function poller() {
    return document.querySelector("[data-poll]");
  }

  function schedule() {
    clearTimeout(timer);
    var el = poller();
    var seconds = el ? Number(el.getAttribute("data-interval")) || 3 : 3;
    var delay = seconds * 1000;
    // Hidden: ten intervals, less the second a poll may take, so an error shows in the title
    // within ten intervals of its arrival.
    if (document.hidden) delay = Math.max(delay, 10 * delay - 1000);
    timer = setTimeout(tick, delay);
  }

  function tick() {
    var el = poller();
    if (el) htmx.trigger(el, "poll");
    schedule();
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (elt.hasAttribute("data-poll") && document.hidden) {
      // Nobody looks at a hidden tab's rows: it asks only for what is new, never Seam.
      event.detail.parameters.hidden = "1";
    }
    if (elt.id !== "filters") return;
    var data = event.detail.formData;
    Array.from(new Set(data.keys())).forEach(function (key) {
      if (data.getAll(key).every(function (value) { return value === ""; })) data.delete(key);
    });
  });

  // --- A live list: new rows arrive in the hidden "incoming" body and are brought in here.
  var waiting = 0; // new rows not brought in: the "N new" notice

  function liveRows() {
    return document.querySelector("[data-live-rows]");
  }

  function atTop(rows) {
    return rows.closest("table").getBoundingClientRect().top >= 0;
  }

  function showNotice() {
    var link = document.getElementById("new-attempts");
    if (!link) return;
    var noun = link.getAttribute("data-noun") || "attempts";
    link.textContent = waiting === 1 ? "1 new " + noun.replace(/s$/, "") : waiting + " new " + noun;
    link.hidden = waiting === 0;
  }

  function bringIn(rows) {
    var incoming = rows.parentNode.querySelector("tbody[hidden]");
    var arrived = Array.from(incoming.children);
    if (!arrived.length) return;
    var placeholder = rows.querySelector("td.empty");
    if (placeholder) placeholder.parentNode.remove();
    arrived.reverse().forEach(function (tr) {
      var same = rows.querySelector("#" + CSS.escape(tr.id));
      if (same) same.remove(); // recorded while the page loaded: shown once
      tr.classList.add("changed");
      rows.insertBefore(tr, rows.firstChild);
    });
    // The page never grows: the oldest rows leave the bottom, and "Older" starts after the last.
    var size = Number(rows.getAttribute("data-page-size")) || 50;
    var trimmed = false;
    while (rows.children.length > size) {
      rows.lastElementChild.remove();
      trimmed = true;
    }
    var older = document.getElementById("older-link");
    var last = rows.lastElementChild;
    if (older && trimmed && last && last.getAttribute("data-cursor")) {
      var url = new URL(older.getAttribute("href"), window.location.href);
      url.searchParams.delete("before");
      url.searchParams.set("after", last.getAttribute("data-cursor"));
      // A new element: htmx's boost keeps the href it found when it processed the link.
      var moved = older.cloneNode(true);
      moved.setAttribute("href", url.pathname + url.search);
      moved.setAttribute("rel", "next");
      moved.hidden = false;
      older.replaceWith(moved);
      htmx.process(moved);
    }
    waiting = 0;
    showNotice();
  }

  function arrived(rows) {
    var news = document.getElementById("live-news");
    var count = news ? Number(news.getAttribute("data-count")) || 0 : 0;
    if (news) news.setAttribute("data-count", "0");
    var incoming = rows.parentNode.querySelector("tbody[hidden]");
    if (rows.hasAttribute("data-later")) {
      // A later page keeps its rows: it only says how many are newer.
      incoming.replaceChildren();
      waiting += count;
    } else if (atTop(rows)) {
      waiting = 0;
      bringIn(rows);
    } else {
      waiting += count;
      var size = Number(rows.getAttribute("data-page-size")) || 50;
      while (incoming.children.length > size) incoming.lastElementChild.remove();
    }
    showNotice();
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("#new-attempts");
    var rows = liveRows();
    if (!link || !rows || rows.hasAttribute("data-later")) return;
    event.preventDefault();
    bringIn(rows);
    rows.closest("table").scrollIntoView({ block: "start" });
  });

  // --- The tab tells: new errors counted while hidden, and notified when asked.
  var knownErrors = new Set();
  var hiddenErrors = 0;
  var plainTitle = document.title;
  var NOTIFY_KEY = "notify-new-errors";

  function errorRows() {
    // By the status badge: a swapped row's own attributes take their new values only once
    // htmx has settled it.
    return Array.from(document.querySelectorAll("tr[data-status] .badge.error"), function (b) {
      return b.closest("tr");
    });
  }

  function learnErrors() {
    errorRows().forEach(function (tr) { knownErrors.add(tr.id); });
  }

  function newErrors() {
    return errorRows().filter(function (tr) {
      if (knownErrors.has(tr.id)) return false;
      knownErrors.add(tr.id);
      return true;
    });
  }

  function favicon(alert) {
    var icon = document.querySelector("link[rel=icon]");
    if (!icon) return;
    if (!icon.hasAttribute("data-plain")) icon.setAttribute("data-plain", icon.getAttribute("href"));
    icon.setAttribute("href", icon.getAttribute(alert ? "data-alert" : "data-plain"));
  }

  function tell() {
    if (hiddenErrors > 0) {
      document.title = "(" + hiddenErrors + ") " + plainTitle;
      favicon(true);
    } else {
      document.title = plainTitle;
      favicon(false);
    }
  }

  function cell(tr, index) {
    var td = tr.children[index];
    return td ? td.textContent.trim() : "";
  }

  function notify(errors) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    if (localStorage.getItem(NOTIFY_KEY) !== "on") return;
    var first = errors[0];
    var title = errors.length === 1
      ? cell(first, 1) + " ended in error"
      : errors.length + " new errors, " + cell(first, 1) + " first";
    var link = first.querySelector("a[href]");
    var note = new Notification(title, { body: cell(first, 5) || "error", tag: first.id });
    note.onclick = function () {
      window.focus();
      if (link) window.location.href = link.href;
      note.close();
    };
  }

  function notifyButton() {
    var button = document.getElementById("notify-errors");
    if (!button || !("Notification" in window)) return;
    var on = localStorage.getItem(NOTIFY_KEY) === "on" && Notification.permission === "granted";
    button.textContent = on ? "Stop notifying me of new errors" : "Notify me of new errors";
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.hidden = false;
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest("#notify-errors")) return;
    if (localStorage.getItem(NOTIFY_KEY) === "on" && Notification.permission === "granted") {
      localStorage.removeItem(NOTIFY_KEY);
      notifyButton();
      return;
    }
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") localStorage.setItem(NOTIFY_KEY, "on");
      notifyButton();
    });
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.elt.hasAttribute("data-poll") || !event.detail.successful) return;
    // Errors first: a later page lets its new rows go once it has counted them.
    var errors = newErrors();
    var rows = liveRows();
    if (rows) arrived(rows);
    if (!errors.length) return;
    if (document.hidden) {
      hiddenErrors += errors.length;
      tell();
    }
    notify(errors);
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    // A new list (filters, another page): its errors are not news, its notice starts again.
    if (event.detail.target && event.detail.target.id === "results") {
      learnErrors();
      waiting = 0;
      showNotice();
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      plainTitle = document.title.replace(/^\(\d+\) /, "");
      hiddenErrors = 0;
      schedule();
    } else {
      hiddenErrors = 0;
      tell();
      tick(); // shown again: catch up at once
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    learnErrors();
    notifyButton();
    var el = poller();
    if (el && el.hasAttribute("data-poll-now")) tick();
    else schedule();
  });

  // --- Copying a payload.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var text = document.getElementById(button.getAttribute("data-copy")).textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      done();
    }
  });
})();
