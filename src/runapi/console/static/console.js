// runapi console: progressive enhancement only; every page works without this file.
// Times are printed in UTC by the server; hovering one shows it in the browser's local time.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when.getTime())) {
      el.title = when.toLocaleString() + " (local time)";
    }
  });
});
