// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var body = document.body;
  // When the server-side idle limit has passed, take the page off the screen too.
  var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  if (body.getAttribute("data-signed-in") === "1" && idle > 0) {
    var timer = null;
    var arm = function () {
      if (timer) { window.clearTimeout(timer); }
      timer = window.setTimeout(function () { window.location.replace("/login?ended=1"); }, idle * 1000);
    };
    arm();
  }
  // A slow connection must not turn one click into two records.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.getAttribute("data-submitted") === "1") { event.preventDefault(); return; }
    form.setAttribute("data-submitted", "1");
  });
})();
